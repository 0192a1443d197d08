"""WebSocket upgrades on an app's host reach the app: messages both ways, subprotocols, close
codes, and a refused upgrade when nothing answers. The app is a wsproto echo server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from starlette.websockets import WebSocketDisconnect
from test_proxy import _app_with
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Request,
    TextMessage,
)

from conftest import ApiHarness


async def _echo_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every message; "close" closes with code 4001; the path answers the first message."""
    ws = WSConnection(ConnectionType.SERVER)
    while data := await reader.read(65536):
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Request):
                chosen = event.subprotocols[0] if event.subprotocols else None
                writer.write(ws.send(AcceptConnection(subprotocol=chosen)))
                writer.write(ws.send(TextMessage(data=f"hello {event.target}")))
            elif isinstance(event, TextMessage) and event.data == "close":
                writer.write(ws.send(CloseConnection(code=4001, reason="bye")))
            elif isinstance(event, TextMessage | BytesMessage):
                writer.write(ws.send(type(event)(data=event.data)))
            elif isinstance(event, CloseConnection):
                writer.write(ws.send(event.response()))
        await writer.drain()


@pytest.fixture
def ws_upstream() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    handlers: set[asyncio.Task] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await _echo_client(reader, writer)
        finally:
            writer.close()

    async def shutdown() -> None:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def connect(api: ApiHarness, app: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
    headers = {"Host": f"{app}.localhost:8080"}
    return api.client.websocket_connect(
        f"ws://{app}.localhost:8080{path}", headers=headers, **kwargs
    )


def test_messages_flow_both_ways(api: ApiHarness, ws_upstream: str) -> None:
    api.run(_app_with, "chat", ws_upstream)
    with connect(api, "chat", "/socket?room=1", subprotocols=["chat.v1"]) as ws:
        assert ws.accepted_subprotocol == "chat.v1"
        assert ws.receive_text() == "hello /socket?room=1"
        ws.send_text("ping")
        assert ws.receive_text() == "ping"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"\x00\x01"


def test_the_apps_close_code_reaches_the_client(api: ApiHarness, ws_upstream: str) -> None:
    api.run(_app_with, "chat", ws_upstream)
    with connect(api, "chat", "/") as ws:
        ws.receive_text()
        ws.send_text("close")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 4001


def test_an_app_with_nothing_running_refuses_the_upgrade(api: ApiHarness) -> None:
    api.run(_app_with, "chat", None, status="failed")
    with pytest.raises(WebSocketDisconnect) as refused:
        with connect(api, "chat", "/"):
            pass
    assert refused.value.code == 1011

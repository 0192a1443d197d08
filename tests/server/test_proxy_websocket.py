"""WebSocket upgrades on an app's host reach the app through the router: messages both ways,
close codes, and a refused upgrade when nothing answers. The app is a wsproto echo server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from router_support import running_router
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


@pytest.fixture
def connect(api: ApiHarness) -> Iterator[Any]:
    """A WebSocket handshake for ``app`` sent to the router: its socket and wsproto state."""
    with running_router(api) as router, contextlib.ExitStack() as stack:

        def open_socket(app: str, path: str) -> tuple[socket.socket, WSConnection]:
            port = router.port  # type: ignore[attr-defined]
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            ws = WSConnection(ConnectionType.CLIENT)
            sock.sendall(ws.send(Request(host=f"{app}.localhost:8080", target=path)))
            return sock, ws

        yield open_socket


def events_until(sock: socket.socket, ws: WSConnection, kind: type) -> list[Any]:
    """What the app sent, read until an event of ``kind`` arrives."""
    seen: list[Any] = []
    while not any(isinstance(event, kind) for event in seen):
        data = sock.recv(65536)
        assert data, f"closed before {kind.__name__}: {seen}"
        ws.receive_data(data)
        seen += list(ws.events())
    return seen


def test_messages_flow_both_ways_and_the_apps_close_code_reaches_the_client(
    api: ApiHarness, ws_upstream: str, connect: Any
) -> None:
    api.run(_app_with, "chat", ws_upstream)
    sock, ws = connect("chat", "/socket?room=1")
    greeting = events_until(sock, ws, TextMessage)
    assert isinstance(greeting[0], AcceptConnection)
    assert greeting[-1].data == "hello /socket?room=1"
    sock.sendall(ws.send(BytesMessage(data=b"\x00\x01")))
    assert events_until(sock, ws, BytesMessage)[-1].data == b"\x00\x01"
    sock.sendall(ws.send(TextMessage(data="close")))
    assert events_until(sock, ws, CloseConnection)[-1].code == 4001


def test_an_app_with_nothing_running_refuses_the_upgrade(api: ApiHarness, connect: Any) -> None:
    api.run(_app_with, "chat", None, status="failed")
    sock, _ = connect("chat", "/")
    answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 503 ") and b"service_unavailable" in answer

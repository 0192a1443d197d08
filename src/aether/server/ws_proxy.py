"""WebSocket upgrades on an app's host, relayed to the app's process message by message.

hypercorn speaks WebSocket to the client (ASGI ``websocket`` scope); wsproto speaks it to the
app over a plain TCP connection. The handshake is forwarded with the client's headers and
subprotocols; the app's answer decides whether the client is accepted. Then text and binary
messages flow both ways until either side closes, and the close code travels along.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import Receive, Scope, Send
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from aether import upstream as app_http

# wsproto writes these itself; the rest pass as aether.server.forwarding lets them.
HANDSHAKE_HEADERS = frozenset(
    {
        b"host",
        b"connection",
        b"upgrade",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
)
INTERNAL_ERROR = 1011


async def relay_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Relay one WebSocket; ``headers`` are the client's, already filtered for the app."""
    if (await receive())["type"] != "websocket.connect":
        return
    ws = WSConnection(ConnectionType.CLIENT)
    writer.write(ws.send(_handshake(scope, host, headers)))
    await writer.drain()
    accepted = await _answer(ws, reader)
    if accepted is None:
        # Before accept, a close makes the server answer the upgrade with 403.
        await send({"type": "websocket.close", "code": INTERNAL_ERROR})
        return
    await send({"type": "websocket.accept", "subprotocol": accepted.subprotocol})
    to_app = asyncio.create_task(_client_to_app(receive, ws, writer))
    to_client = asyncio.create_task(_app_to_client(ws, reader, writer, send))
    _, pending = await asyncio.wait({to_app, to_client}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await task


def _handshake(scope: Scope, host: str, headers: list[tuple[bytes, bytes]]) -> Request:
    target = scope.get("raw_path") or scope["path"].encode("utf-8")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    return Request(
        host=host,
        target=target.decode("latin-1"),
        subprotocols=list(scope.get("subprotocols") or []),
        extra_headers=headers,
    )


async def _answer(ws: WSConnection, reader: asyncio.StreamReader) -> AcceptConnection | None:
    while True:
        data = await reader.read(app_http.READ_CHUNK)
        ws.receive_data(data or None)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return event
            if isinstance(event, RejectConnection | CloseConnection):
                return None
        if not data:
            return None


async def _client_to_app(receive: Receive, ws: WSConnection, writer: asyncio.StreamWriter) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            with contextlib.suppress(LocalProtocolError):
                writer.write(ws.send(CloseConnection(code=message.get("code", 1000))))
                await writer.drain()
            return
        if message.get("text") is not None:
            writer.write(ws.send(TextMessage(data=message["text"])))
        elif message.get("bytes") is not None:
            writer.write(ws.send(BytesMessage(data=message["bytes"])))
        await writer.drain()


async def _app_to_client(
    ws: WSConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send: Send
) -> None:
    pending: dict[str, Any] = {"text": [], "bytes": []}
    try:
        while True:
            # Events first: the handshake's read may already hold the app's first messages.
            for event in ws.events():
                if await _deliver(event, ws, writer, send, pending):
                    return
            data = await reader.read(app_http.READ_CHUNK)
            if not data:  # the app went away without a close frame
                await send({"type": "websocket.close", "code": INTERNAL_ERROR})
                return
            ws.receive_data(data)
    except RemoteProtocolError:
        await send({"type": "websocket.close", "code": INTERNAL_ERROR})


async def _deliver(
    event: Event, ws: WSConnection, writer: asyncio.StreamWriter, send: Send, pending: dict
) -> bool:
    """Hand one app event to the client; True once the connection is closed."""
    if isinstance(event, TextMessage | BytesMessage):
        kind = "text" if isinstance(event, TextMessage) else "bytes"
        pending[kind].append(event.data)
        if event.message_finished:  # the app may fragment one message into frames
            joined = ("" if kind == "text" else b"").join(pending[kind])
            pending[kind] = []
            await send({"type": "websocket.send", kind: joined})
    elif isinstance(event, Ping):
        writer.write(ws.send(event.response()))
        await writer.drain()
    elif isinstance(event, CloseConnection):
        with contextlib.suppress(LocalProtocolError):
            writer.write(ws.send(event.response()))
            await writer.drain()
        await send({"type": "websocket.close", "code": event.code})
        return True
    return False

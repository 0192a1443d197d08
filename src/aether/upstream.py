"""The worker's health check of an app's own port: one ``GET``, its status code (HTTP/1.1
framed by h11, over asyncio streams).

It sits below the worker and imports nothing of Aether's. App traffic goes through the
router (:mod:`aether.server.router`), which keeps its own connections to the apps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import h11

CONNECT_TIMEOUT_SECS = 5.0
READ_CHUNK = 65536

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(
    host: str | None, port: int, *, timeout: float = CONNECT_TIMEOUT_SECS
) -> Streams | None:
    """An open connection to ``host:port``, or None when nothing accepts one in time."""
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return None


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def next_event(
    conn: h11.Connection, reader: asyncio.StreamReader, idle: float | None = None
) -> object:
    """The next h11 event of the answer, reading as needed; TimeoutError when the app stays
    silent for ``idle`` seconds, h11.RemoteProtocolError when it does not speak HTTP."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await asyncio.wait_for(reader.read(READ_CHUNK), idle))


async def get_status(
    host: str,
    port: int,
    target: str,
    *,
    timeout: float,
    headers: Iterable[tuple[str, str]] = (),
) -> int | None:
    """The status code of ``GET target`` (the final answer, after any 1xx), or None when
    nothing answers HTTP within ``timeout`` seconds, all told."""
    try:
        return await asyncio.wait_for(_get_status(host, port, target, headers), timeout)
    except (OSError, TimeoutError, h11.ProtocolError):
        return None


async def _get_status(
    host: str, port: int, target: str, headers: Iterable[tuple[str, str]]
) -> int | None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=target,
            headers=[("host", f"{host}:{port}"), *headers, ("connection", "close")],
        )
        writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
        await writer.drain()
        while True:
            event = await next_event(conn, reader)
            if isinstance(event, h11.Response):
                return event.status_code
            if isinstance(event, h11.ConnectionClosed):
                return None
    finally:
        await close(writer)

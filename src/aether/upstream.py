"""HTTP/1.1 to an app's own port: asyncio streams, framed by h11.

The control plane's Host-header proxy relays requests through it, and the worker's health
check asks it for a status code, so both speak to apps with the same code. It sits below the
server and the worker (which may not import each other) and imports nothing of Aether's.

:class:`Pool` keeps the proxy's upstream connections open between requests (HTTP/1.1
keep-alive), per app endpoint: opening a TCP connection per request cost the router most of
its throughput (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import h11

CONNECT_TIMEOUT_SECS = 5.0
READ_CHUNK = 65536
# Idle connections are dropped before Node.js's default keep-alive timeout (5 s) closes them
# from the app's side, so a request rarely meets a connection that is just being closed.
POOL_IDLE_SECS = 4.0
POOL_MAX_IDLE = 64  # per endpoint: beyond this, connections are closed after their answer

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


@dataclass
class Connection:
    """One upstream connection with its h11 state; ``reused`` when it served a request
    before (the app may have closed it meanwhile: a request that fails on it before any
    answer may be sent again on a fresh one)."""

    endpoint: tuple[str, int]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    reused: bool = False
    idle_since: float = 0.0


class Pool:
    """Idle keep-alive connections per ``(host, port)``, newest first.

    :meth:`acquire` hands out an idle connection (or opens one); :meth:`release` takes it
    back when its request and answer ended cleanly and both sides keep it open, and closes
    it otherwise. Runs on one event loop; no lock needed."""

    def __init__(self, *, idle_secs: float = POOL_IDLE_SECS, max_idle: int = POOL_MAX_IDLE):
        self.idle_secs = idle_secs
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def acquire(self, host: str, port: int, *, fresh: bool = False) -> Connection | None:
        """A connection to ``host:port`` (an idle one unless ``fresh``), or None when
        nothing accepts one in time."""
        key = (host, port)
        idle = self._idle.get(key, [])
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if now - conn.idle_since < self.idle_secs and not conn.reader.at_eof():
                conn.reused = True
                return conn
            await close(conn.writer)
        streams = await connect(host, port)
        if streams is None:
            return None
        return Connection(key, *streams)

    async def release(self, conn: Connection) -> None:
        """Keep ``conn`` for the next request when its exchange ended cleanly."""
        parser = conn.h11
        clean = parser.our_state is h11.DONE and parser.their_state is h11.DONE
        idle = self._idle.setdefault(conn.endpoint, [])
        if not clean or len(idle) >= self.max_idle or conn.reader.at_eof():
            await close(conn.writer)
            return
        parser.start_next_cycle()
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def discard(self, conn: Connection) -> None:
        await close(conn.writer)

    def idle_count(self, host: str, port: int) -> int:
        return len(self._idle.get((host, port), ()))

    async def close(self) -> None:
        """Close every idle connection (at shutdown)."""
        idle, self._idle = self._idle, {}
        await asyncio.gather(*(close(c.writer) for conns in idle.values() for c in conns))

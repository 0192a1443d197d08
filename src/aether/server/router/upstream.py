"""Connections from the router to apps' endpoints, kept open between requests.

An :class:`Upstream` carries one exchange at a time and hands what it reads to it; between
exchanges it waits in the :class:`UpstreamPool`, per endpoint, newest first. An app that
closes an idle connection (Node.js does after 5 s) takes it out of the pool at once; one that
was about to be reused is noticed by the exchange, which sends the request again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Protocol, cast

CONNECT_TIMEOUT_SECS = 5.0
# Idle connections are not reused after this, before Node.js's default keep-alive timeout
# (5 s) closes them from the app's side, so a request rarely meets one being closed.
POOL_IDLE_SECS = 4.0
POOL_MAX_IDLE = 64  # per endpoint: beyond this, connections are closed after their answer
# An early answer left unread when a write failed is read up to this (an error answer is small).
UNREAD_MAX_BYTES = 1024 * 1024

# (host, port) of an app's instance; a port of 0 names the unix socket at the path in host
# (the API's own listener behind the front, :mod:`aether.server.launch`).
Endpoint = tuple[str, int]
UNIX = 0


def describe(endpoint: Endpoint) -> str:
    host, port = endpoint
    return host if port == UNIX else f"{host}:{port}"


class Receiver(Protocol):
    """What an upstream connection reports to: the exchange (or tunnel) using it."""

    def upstream_data(self, data: bytes) -> None: ...
    def upstream_lost(self) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...


class Upstream(asyncio.Protocol):
    """One connection to an app's endpoint."""

    def __init__(self, pool: UpstreamPool, endpoint: Endpoint) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.receiver: Receiver | None = None
        self.reused = False  # served a request before: the app may have closed it meanwhile
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.receiver is None:  # bytes nobody asked for: not a connection to reuse
            self.close()
            return
        self.receiver.upstream_data(data)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            if exc is not None:
                # A write failed: the other side closed while a request body was still going
                # out — an answer given before the whole upload was read (a full disk, a
                # refused size). That answer may wait unread on the socket: pass it on.
                for data in self._unread():
                    receiver.upstream_data(data)
            receiver.upstream_lost()

    def _unread(self) -> Iterator[bytes]:
        """What the socket still holds (the transport stopped reading at the failed write;
        the socket closes after connection_lost), up to UNREAD_MAX_BYTES."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return
        left = UNREAD_MAX_BYTES
        while left > 0:
            try:
                data = os.read(sock.fileno(), min(left, 65536))
            except OSError:  # nothing more now (non-blocking), or reset
                return
            if not data:
                return
            left -= len(data)
            yield data

    def pause_writing(self) -> None:
        if self.receiver is not None:
            self.receiver.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.receiver is not None:
            self.receiver.upstream_paused(False)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def write_eof(self) -> None:
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()

    def pause_reading(self, paused: bool) -> None:
        if self.transport is None or self.closed:
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def close(self) -> None:
        self.receiver = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.pool.forget(self)
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections per endpoint. Runs on one event loop; no lock needed."""

    def __init__(self, *, idle_secs: float = POOL_IDLE_SECS, max_idle: int = POOL_MAX_IDLE):
        self.idle_secs = idle_secs
        self.max_idle = max_idle
        self._idle: dict[Endpoint, list[Upstream]] = {}

    def take_idle(self, endpoint: Endpoint, now: float) -> Upstream | None:
        """An idle connection to ``endpoint`` young enough to reuse, or None."""
        idle = self._idle.get(endpoint)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_secs:
                conn.reused = True
                return conn
            conn.close()
        return None

    async def open(self, endpoint: Endpoint) -> Upstream | None:
        """A new connection to ``endpoint``, or None when nothing accepts one in time."""
        loop = asyncio.get_running_loop()
        host, port = endpoint
        factory = functools.partial(Upstream, self, endpoint)
        connecting = (
            loop.create_unix_connection(factory, host)
            if port == UNIX
            else loop.create_connection(factory, host, port)
        )
        try:
            _, conn = await asyncio.wait_for(connecting, CONNECT_TIMEOUT_SECS)
        except (OSError, TimeoutError):
            return None
        return conn

    def release(self, conn: Upstream, now: float) -> None:
        """Keep ``conn`` for the next request to its endpoint (its exchange ended cleanly)."""
        idle = self._idle.setdefault(conn.endpoint, [])
        if conn.closed or len(idle) >= self.max_idle:
            conn.close()
            return
        conn.receiver = None
        conn.idle_since = now
        idle.append(conn)

    def forget(self, conn: Upstream) -> None:
        idle = self._idle.get(conn.endpoint)
        if idle and conn in idle:
            idle.remove(conn)

    def idle_count(self, endpoint: Endpoint) -> int:
        return len(self._idle.get(endpoint, ()))

    def close(self) -> None:
        """Close every idle connection (at shutdown)."""
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.close()

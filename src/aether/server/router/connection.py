"""One client connection to the router: requests parsed as they arrive (httptools), answered
one at a time, in order.

Pipelined requests wait their turn in a queue (reading pauses when it is deep or their bodies
pile up), so an answer can never overtake another. A request head is limited in size and in
time (slow clients cannot hold a connection open by trickling headers); a keep-alive
connection with nothing to do is closed after a while. A request that cannot be parsed is
answered ``400`` after the requests before it, and the connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import httptools

from aether.server.router.upstream import Upstream
from aether.server.router.wire import Header

log = logging.getLogger("aether.router")

HEAD_LIMIT = 16 * 1024  # bytes of request line and headers, as the API port's own limit
HEAD_TIMEOUT_SECS = 30.0  # to send a whole request head
KEEP_ALIVE_SECS = 75.0  # an idle keep-alive connection is closed after this, as the API port's
PIPELINE_DEPTH = 16  # requests waiting behind the one being answered
BUFFER_LIMIT = 256 * 1024  # body bytes held for requests not being sent yet
# A request body up to this size is kept while it is sent, so the request can go again on a
# fresh connection when a pooled one turns out closed by the app; larger ones cannot.
REPLAY_LIMIT = 1 << 20
# A request body of a known length up to this size is received whole before the request goes
# on, in one write with its head (as nginx buffers request bodies): a server that answers
# from the head and closes (hypercorn, when the body is still unread) would otherwise meet
# the body's write on a closed connection, and its answer be lost.
WHOLE_BODY_LIMIT = 64 * 1024


class BodySink(Protocol):
    def send_body(self, data: bytes) -> None: ...
    def body_done(self) -> None: ...
    def client_paused(self, paused: bool) -> None: ...
    def client_lost(self) -> None: ...
    def client_ended(self) -> None: ...
    def check_idle(self, now: float) -> None: ...


class Router(Protocol):
    """What a connection asks of the router that accepted it (``router.server.Router``);
    named here so that the connection does not import the server that imports it."""

    connections: set[ClientConnection]
    stopping: bool

    def forget(self, conn: ClientConnection) -> None: ...
    async def answer(self, conn: ClientConnection, request: Request) -> bool: ...
    def answer_now(
        self,
        conn: ClientConnection,
        request: Request,
        on_end: Callable[[Request, str], None],
    ) -> bool: ...


@dataclass(eq=False)
class Request:
    method: bytes = b""
    target: bytes = b""
    headers: list[Header] = field(default_factory=list)
    version: str = "1.1"
    keep_alive: bool = True
    upgrade: bool = False
    head_done: bool = False
    complete: bool = False
    body: list[bytes] = field(default_factory=list)  # received, not passed on yet
    kept: list[bytes] | None = field(default_factory=list)  # all received, up to REPLAY_LIMIT
    kept_size: int = 0
    sink: BodySink | None = None  # the exchange the body streams to
    error: tuple[int, str] | None = None  # (status, message): answered, never forwarded
    tail: bytearray = field(default_factory=bytearray)  # after an upgrade's head
    sent: bool = False  # went to an app once: its body is what ``kept`` holds
    whole: bool = False  # its body is small: the request goes on once it is complete

    def add_body(self, data: bytes) -> None:
        if self.kept is not None:
            self.kept_size += len(data)
            if self.kept_size <= REPLAY_LIMIT:
                self.kept.append(data)
            else:
                self.kept = None
        if self.sink is not None:
            self.sink.send_body(data)
        else:
            self.body.append(data)


class ClientConnection(asyncio.Protocol):
    def __init__(self, router: Router) -> None:
        self.router = router
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.queue: deque[Request] = deque()
        self.parsing: Request | None = None
        self.last: Request | None = None
        self.active: BodySink | None = None
        self.tunnel: Upstream | None = None
        self.upgraded: Request | None = None  # waiting for its tunnel
        self.broken = False
        self.closed = False
        self.head_size = 0  # bytes of the head parsed so far
        self.head_raw = 0
        self.head_started = 0.0
        self.buffered = 0
        self.pauses: set[str] = set()
        self.write_paused = False
        self.busy = False  # a request is being answered
        self.client_eof = False  # the client sends nothing more
        # When the connection is closed unless a request arrives (None while answering);
        # the router's sweep checks it, so no timer is set per request.
        self.deadline: float | None = None
        self.task: asyncio.Task[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio sets it only for sockets made with IPPROTO_TCP
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        self.router.connections.add(self)
        self.deadline = self.loop.time() + KEEP_ALIVE_SECS

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.upgraded is not None:
            self.upgraded.tail += data
            return
        if self.broken:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[int(exc.args[0]) :])
            return
        except _HeadTooLarge:
            self._refuse(431, f"the request's head is larger than {HEAD_LIMIT} bytes")
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):  # raised in a callback
                self._refuse(431, f"the request's head is larger than {HEAD_LIMIT} bytes")
            else:
                self._refuse(400, f"the request is not valid HTTP/1.1: {exc}")
            return
        if self.parsing is not None and not self.parsing.head_done:
            self.head_raw += len(data)  # what the parser holds of an unfinished head
            if self.head_raw > 2 * HEAD_LIMIT:
                self._refuse(431, f"the request's head is larger than {HEAD_LIMIT} bytes")

    def eof_received(self) -> bool:
        # A half-closed client may still read the answers to what it sent; then it ends.
        self.client_eof = True
        if self.active is not None:
            self.active.client_ended()
        return self.tunnel is not None or bool(self.queue) or self.busy

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.router.forget(self)
        self.deadline = None
        if self.active is not None:
            self.active.client_lost()
        if self.tunnel is not None:
            self.tunnel.close()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._writes_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._writes_paused(False)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.parsing = Request()
        self.head_size = self.head_raw = 0
        self.head_started = self.loop.time()
        if not self.busy:  # waiting between requests: the head's own deadline now
            self.deadline = self.head_started + HEAD_TIMEOUT_SECS

    def on_url(self, url: bytes) -> None:
        assert self.parsing is not None
        self.parsing.target += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.parsing
        if request is not None and not request.head_done:  # trailers are not passed on
            request.headers.append((name, value))
            self._count_head(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        request, parser = self.parsing, self.parser
        assert request is not None
        request.method = parser.get_method()
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        request.upgrade = parser.should_upgrade()
        request.head_done = True
        request.whole = _small_body(request.headers)
        self.last = request
        self.queue.append(request)
        if len(self.queue) > PIPELINE_DEPTH:
            self.pause("pipeline")
        self._dispatch()

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        assert request is not None
        request.add_body(body)
        if request.sink is None:
            self.buffered += len(body)
            if self.buffered > BUFFER_LIMIT:
                self.pause("buffer")

    def on_message_complete(self) -> None:
        request, self.parsing = self.parsing, None
        assert request is not None
        request.complete = True
        if request.sink is not None:
            request.sink.body_done()
        elif request.whole:
            self._dispatch()

    # used by the router and the exchanges

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def take_body(self, request: Request, sink: BodySink) -> list[bytes]:
        """Hand ``request``'s body to ``sink``: what arrived so far now, the rest as it comes."""
        chunks, request.body = request.body, []
        self.buffered -= sum(len(c) for c in chunks)
        if self.buffered <= BUFFER_LIMIT:
            self.resume("buffer")
        request.sink = sink
        self.active = sink
        if self.write_paused:
            sink.client_paused(True)
        return chunks

    def finished(self, request: Request) -> None:
        request.sink = None
        self.active = None

    def open_tunnel(self, upstream: Upstream, request: Request) -> bytes:
        """From now on the client's bytes go to ``upstream`` as they are; the bytes that came
        after the upgrade's head so far are returned."""
        self.tunnel, self.upgraded = upstream, None
        self.resume("upgrade")
        return bytes(request.tail)

    def pause(self, reason: str) -> None:
        self.pauses.add(reason)
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self, reason: str) -> None:
        if reason not in self.pauses:
            return
        self.pauses.discard(reason)
        if not self.pauses and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.abort()

    def idle(self) -> bool:
        """Nothing being answered or waiting: it can be closed without cutting anything."""
        return not self.busy and self.tunnel is None and not self.queue

    # inside

    def check(self, now: float) -> None:
        """From the router's sweep: close an idle connection past its deadline; end an
        exchange whose app fell silent."""
        if self.deadline is not None and now >= self.deadline:
            self.close()
        elif self.active is not None:
            self.active.check_idle(now)

    def _dispatch(self) -> None:
        """Answer the next request when none is being answered: at once when the router can
        (a known app, an idle upstream connection), else in a task that may wait."""
        while self.queue and not self.busy and not self.closed:
            if self.queue[0].whole and not self.queue[0].complete:
                return  # on_message_complete dispatches it
            request = self.queue.popleft()
            if len(self.queue) <= PIPELINE_DEPTH:
                self.resume("pipeline")
            self.busy, self.deadline = True, None
            if not self.router.answer_now(self, request, self._answered):
                self.task = self.loop.create_task(self._answer(request))

    def _answered(self, request: Request, outcome: str) -> None:
        """An answer given at once ended: ``keep``, ``close``, or ``stale`` (the request goes
        again, in a task)."""
        if outcome == "stale":
            self.task = self.loop.create_task(self._answer(request))
            return
        self._next(outcome == "keep")

    async def _answer(self, request: Request) -> None:
        try:
            keep = await self.router.answer(self, request)
        except Exception:  # a bug must not leave the connection hanging
            log.exception("the router failed on a request")
            keep = False
        self._next(keep)

    def _next(self, keep: bool) -> None:
        self.busy = False
        if not keep or self.router.stopping or (self.client_eof and not self.queue):
            self.close()
            return
        if self.parsing is not None:
            self.deadline = self.head_started + HEAD_TIMEOUT_SECS
        else:
            self.deadline = self.loop.time() + KEEP_ALIVE_SECS
        self._dispatch()

    def _count_head(self, size: int) -> None:
        self.head_size += size
        if self.head_size > HEAD_LIMIT:
            raise _HeadTooLarge

    def _refuse(self, status: int, message: str) -> None:
        """Stop reading; answer ``status`` once the requests before it are answered."""
        self.broken = True
        self.pause("broken")
        request = self.parsing
        if request is not None and request.head_done:
            # The body of a request already on its way is malformed: nothing more can be
            # said on this connection.
            log.info("closing a connection whose request body is malformed: %s", message)
            self.abort()
            return
        self.parsing = None
        self.queue.append(Request(error=(status, message), complete=True, keep_alive=False))
        self._dispatch()

    def _upgrade(self, tail: bytes) -> None:
        request = self.last
        if request is None or not request.upgrade:  # CONNECT, which is not relayed
            self._refuse(405, "CONNECT is not relayed")
            return
        request.tail += tail
        self.upgraded = request
        self.pause("upgrade")

    def _writes_paused(self, paused: bool) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_reading(paused)
        elif self.active is not None:
            self.active.client_paused(paused)


def _small_body(headers: list[Header]) -> bool:
    """A body of a known length up to WHOLE_BODY_LIMIT, not held back for ``100 Continue``."""
    length = None
    for name, value in headers:
        lower = name.lower()
        if lower == b"expect":
            return False
        if lower == b"content-length":
            length = value
    return length is not None and length.strip().isdigit() and 0 < int(length) <= WHOLE_BODY_LIMIT


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the head went past HEAD_LIMIT."""

"""One request relayed to an app over one upstream connection, and the answer back.

The request head goes first, then the body as the client sends it (chunked again when it
came chunked). The answer's head is rewritten (hop-by-hop headers out, the router's own
framing and ``Connection`` in) and its body streams to the client as it arrives, with back
pressure both ways. The outcome says whether the client's connection goes on, or that the
pooled connection had been closed by the app before it answered (the request may go again).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

import httptools

from aether.server.router import wire
from aether.server.router.connection import ClientConnection, Request
from aether.server.router.upstream import Upstream, UpstreamPool, describe

log = logging.getLogger("aether.router")


class Outcome(enum.Enum):
    KEEP = "keep"  # answered; the client's connection goes on
    CLOSE = "close"  # answered (or cut off): the client's connection ends
    STALE = "stale"  # a pooled connection the app had closed: nothing was answered


class Exchange:
    def __init__(
        self,
        conn: ClientConnection,
        request: Request,
        upstream: Upstream,
        pool: UpstreamPool,
        *,
        chunked: bool,
        idle_secs: float,
        stopping: Callable[[], bool],
        to_api: bool = False,
    ) -> None:
        self.conn, self.request, self.upstream, self.pool = conn, request, upstream, pool
        self.loop = conn.loop
        # The parser calls back into the exchange: a cycle, broken when the exchange ends so
        # that each request's objects go with their last reference, not with a GC pass.
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[Outcome] = self.loop.create_future()
        self.chunked = chunked
        self.idle_secs = idle_secs
        self.stopping = stopping
        # The API, behind the router, hears a client's end as it did without it: a log
        # follow ends when its client leaves, not when the next line fails to reach it.
        self.to_api = to_api
        self.client_gone = False
        self.got_bytes = False
        self.sent = False  # the whole request body went to the app
        self.started = False  # the answer's head went to the client
        self.finished = False
        self.interim = False
        self.status = 0
        self.phrase = b""
        self.headers: list[wire.Header] = []
        self.rechunk = False
        self.until_close = False
        self.keep_client = False
        self.activity = self.loop.time()
        self.out: list[bytes] = []  # for the client, written at the end of each read
        self.feeding = False
        # Told the outcome once the answer is out (answers given at once, without a task).
        self.on_end: Callable[[Request, str], None] | None = None

    def start(self, head: bytes, body: list[bytes]) -> None:
        """Send the head and the body received so far in one write: a server that answers
        from the head alone and closes (hypercorn does when the body is still unread) must
        not meet a second write, whose failure would lose its answer."""
        self.upstream.receiver = self
        out = [head]
        out += [wire.chunk(data) if self.chunked else data for data in body if data]
        if self.request.complete:
            self.sent = True
            if self.chunked:
                out.append(wire.LAST_CHUNK)
        self.upstream.write(b"".join(out))

    # the request's body (BodySink)

    def send_body(self, data: bytes) -> None:
        if self.finished or not data:
            return
        self.activity = self.loop.time()
        self.upstream.write(wire.chunk(data) if self.chunked else data)

    def body_done(self) -> None:
        if self.finished or self.sent:
            return
        self.sent = True
        if self.chunked:
            self.upstream.write(wire.LAST_CHUNK)

    def client_paused(self, paused: bool) -> None:
        self.upstream.pause_reading(paused)

    def client_lost(self) -> None:
        self._end(Outcome.CLOSE, reusable=False)

    def client_ended(self) -> None:
        if self.to_api and not self.finished:
            self.client_gone = True
            self.upstream.write_eof()

    # the upstream connection (Receiver)

    def upstream_data(self, data: bytes) -> None:
        self.got_bytes = True
        self.activity = self.loop.time()
        if self.parser is None:
            return
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken("the app switched protocols on a plain request")
        except httptools.HttpParserError as exc:
            self._broken(f"the app's answer is not valid HTTP/1.1: {exc}")
        self.feeding = False
        self._flush()
        if self.finished:
            self._notify()

    def _flush(self) -> None:
        if self.out:
            out, self.out = self.out, []
            self.conn.write(out[0] if len(out) == 1 else b"".join(out))

    def upstream_lost(self) -> None:
        if self.finished:
            return
        if self.client_gone:  # the API heard the client leave and ended the answer
            self.conn.abort()
            self._end(Outcome.CLOSE, reusable=False)
            return
        if not self.got_bytes and self.upstream.reused:
            self._end(Outcome.STALE, reusable=False)
        elif self.started and self.until_close:
            if self.rechunk:
                self.conn.write(wire.LAST_CHUNK)
            self._end(self._client_outcome(), reusable=False)
        else:
            self._broken("the app closed the connection early")

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self.conn.pause("upstream")
        else:
            self.conn.resume("upstream")

    # httptools callbacks (the answer)

    def on_message_begin(self) -> None:
        self.headers = []
        self.phrase = b""

    def on_status(self, status: bytes) -> None:
        self.phrase += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.started:  # trailers are not passed on
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.finished:
            return
        assert self.parser is not None
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: passed on; the answer follows
            self.interim = True
            headers = _end_to_end(self.headers)
            self.out.append(
                wire.response_head(status, self.phrase, headers, chunked=False, keep_alive=True)
            )
            return
        self.interim = False
        self.status = status
        self._send_head()
        if self.request.method == b"HEAD":  # no body follows, whatever the head announces
            self._end(self._client_outcome(), reusable=self._reusable())

    def on_body(self, body: bytes) -> None:
        if self.finished or self.interim:
            return
        self.out.append(wire.chunk(body) if self.rechunk else body)

    def on_message_complete(self) -> None:
        if self.finished or self.interim:
            return
        if self.rechunk:
            self.out.append(wire.LAST_CHUNK)
        self._end(self._client_outcome(), reusable=self._reusable())

    # inside

    def _send_head(self) -> None:
        headers = _end_to_end(self.headers)
        names = {name.lower() for name, _ in self.headers}
        http10 = self.request.version == "1.0"
        bodyless = self.request.method == b"HEAD" or self.status in wire.BODYLESS
        framed = bodyless or (b"content-length" in names and b"transfer-encoding" not in names)
        # Without a length of the app's, the router frames the body in chunks; an HTTP/1.0
        # client knows none, so its body ends with the connection.
        self.until_close = not framed and b"transfer-encoding" not in names
        self.rechunk = not framed and not http10
        self.keep_client = (
            self.request.keep_alive
            and self.request.complete
            and not self.stopping()
            and not (http10 and not framed)
        )
        head = wire.response_head(
            self.status,
            self.phrase,
            headers,
            chunked=self.rechunk,
            keep_alive=self.keep_client,
            http10=http10,
        )
        self.out.append(head)
        self.started = True

    def _reusable(self) -> bool:
        return self.parser is not None and self.parser.should_keep_alive()

    def _client_outcome(self) -> Outcome:
        keep = self.keep_client and self.request.complete and not self.conn.closed
        return Outcome.KEEP if keep else Outcome.CLOSE

    def _broken(self, why: str) -> None:
        if self.finished:
            return
        log.warning("upstream %s: %s", describe(self.upstream.endpoint), why)
        if not self.started:
            self.conn.write(wire.error_response(502, "bad_gateway", why, keep_alive=False))
        else:
            self.conn.abort()  # a cut-off answer must not look complete
        self._end(Outcome.CLOSE, reusable=False)

    def check_idle(self, now: float) -> None:
        """From the router's sweep: end the exchange when the app has been silent too long."""
        if self.finished or now - self.activity < self.idle_secs:
            return
        log.warning("upstream %s silent for %ss", describe(self.upstream.endpoint), self.idle_secs)
        if not self.started:
            message = "the app did not answer in time"
            self.conn.write(wire.error_response(504, "gateway_timeout", message, keep_alive=False))
        else:
            self.conn.abort()
        self._end(Outcome.CLOSE, reusable=False)

    def _end(self, outcome: Outcome, *, reusable: bool) -> None:
        if self.finished:
            return
        self.finished = True
        self.parser = None
        self.conn.finished(self.request)
        upstream = self.upstream
        upstream.receiver = None
        if reusable and self.sent and not upstream.closed and not self.client_gone:
            upstream.pause_reading(False)
            self.pool.release(upstream, self.loop.time())
        else:
            upstream.close()
        if not self.done.done():
            self.done.set_result(outcome)
        if not self.feeding:
            self._notify()

    def _notify(self) -> None:
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end(self.request, self.done.result().value)


def _end_to_end(headers: list[wire.Header]) -> list[wire.Header]:
    return [(k, v) for k, v in headers if k.lower() not in wire.RESPONSE_HOP_BY_HOP]

"""The router's listener and its one decision per request: which app, which instance — or
the API.

A request's ``Host`` names the app (``<app>.<apps domain>``, never a reserved name or the
API's host); its headers are filtered as :mod:`aether.server.forwarding` says, and it goes to
the app's serving instances in turn (:class:`~aether.server.app_targets.AppTargets`). An
instance that refuses the connection is skipped; when none answers, the endpoints are looked
up again (a cutover in between) before ``502``. No app → ``404``, nothing running → ``503``
with ``Retry-After``, an app silent for 5 minutes → ``504``, all as the API's JSON envelope.
WebSocket upgrades become byte tunnels once the app accepts them.

In front of the API (the listener on the API's port) every other request goes to the API's
internal listener, its credentials kept, streamed both ways without a time limit of the
router's (a log follow may be silent for long); the API is down only while it stops → ``503``.

On stop the listener closes, idle connections are closed, answers in flight finish within
the grace period and what is left then is cut.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

from aether.errors import AetherError
from aether.server.app_targets import AppTargets, Target
from aether.server.forwarding import HOP_BY_HOP, forwarded_headers
from aether.server.hosts import RESERVED_APP_NAMES
from aether.server.router import wire
from aether.server.router.connection import ClientConnection, Request
from aether.server.router.exchange import Exchange, Outcome
from aether.server.router.upstream import UNIX, Endpoint, Upstream, UpstreamPool

log = logging.getLogger("aether.router")

# An app silent this long (no header, no body bytes) gets its request ended: 504 before the
# answer started, a cut-off body after.
UPSTREAM_IDLE_SECS = 300.0
SWEEP_SECS = 1.0  # how often timeouts are checked
# How long a closing TLS connection waits for the client's close_notify: asyncio's default
# (30 s) let one idle browser connection hold a stop beyond the grace period.
SSL_SHUTDOWN_SECS = 2.0
# A WebSocket handshake keeps these from the client; the router writes its own
# Connection/Upgrade pair.
_TUNNEL_DROP = HOP_BY_HOP
_NO_LIMIT = float("inf")


class Router:
    """Routes ``<app>.<apps domain>`` requests on its own listener to the apps, and every
    other request to the API's internal listener at ``api`` (a unix socket) when given."""

    def __init__(
        self,
        state: Any,
        *,
        idle_secs: float = UPSTREAM_IDLE_SECS,
        api: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.state = state
        self.idle_secs = idle_secs
        self.api: Endpoint | None = (api, UNIX) if api is not None else None
        self.tls = tls
        self.scheme = "https" if tls is not None else "http"
        self.pool = UpstreamPool()
        self.connections: set[ClientConnection] = set()
        self.stopping = False
        self._drained = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        # Looked up once: an endpoint URL's (host, port), a Host header's app.
        self._endpoint_of: dict[str, Endpoint] = {}
        self._app_of: dict[str, str | None] = {}

    async def start(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if self.tls is not None:  # a closing connection waits this long for close_notify
            grace = self.state.settings.shutdown_grace_secs
            tls = {
                "ssl": self.tls,
                "ssl_handshake_timeout": min(grace, 10.0),
                "ssl_shutdown_timeout": SSL_SHUTDOWN_SECS,
            }
        self._server = await loop.create_server(
            lambda: ClientConnection(self), sock=listener, backlog=1024, **tls
        )
        self._sweeper = loop.call_later(self._sweep_every(), self._sweep)

    def _sweep_every(self) -> float:
        return min(SWEEP_SECS, self.idle_secs / 3)

    def _sweep(self) -> None:
        """Timeouts, checked for every connection at once instead of a timer per request."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in list(self.connections):
            conn.check(now)
        self._sweeper = loop.call_later(self._sweep_every(), self._sweep)

    async def stop(self, grace: float) -> None:
        """Stop accepting; let answers in flight end within ``grace`` seconds, then cut."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.idle():
                conn.close()
        try:
            if self.connections:
                await asyncio.wait_for(self._drained.wait(), grace)
        except TimeoutError:
            log.warning("cutting %d app connection(s) still open at stop", len(self.connections))
        finally:
            for conn in list(self.connections):
                conn.abort()
            self.pool.close()
            if self._sweeper is not None:
                self._sweeper.cancel()

    def _is_stopping(self) -> bool:
        return self.stopping

    def forget(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if self.stopping and not self.connections:
            self._drained.set()

    async def answer(self, conn: ClientConnection, request: Request) -> bool:
        """Answer one request; whether the client's connection goes on."""
        if request.error is not None:
            status, message = request.error
            conn.write(wire.error_response(status, "bad_request", message, keep_alive=False))
            return False
        # A refused upgrade ends the connection: what the client sends next is not HTTP.
        keep = request.keep_alive and request.complete and not self.stopping
        keep = keep and not request.upgrade
        host, refusal = _check(request)
        if refusal is not None:
            conn.write(wire.error_response(400, "bad_request", refusal, keep_alive=False))
            return False
        app = self._app_for(host)
        if app is None and self.api is not None:
            return await self._to_api(conn, request, host, self.api)
        if app is None:
            message = (
                f"no app answers at {host!r} here (apps are <app>.{self.state.hosts.apps_domain})"
            )
            conn.write(wire.error_response(404, "not_found", message, keep_alive=keep))
            return keep
        target, error = await self._lookup(app)
        if error is not None or target is None:
            status, code, message = error or (404, "not_found", f"no app named {app!r}")
            conn.write(wire.error_response(status, code, message, keep_alive=keep))
            return keep
        if request.upgrade:
            await self._tunnel(conn, request, app, target, host)
            return False
        return await self._forward(conn, request, app, target, host)

    def answer_now(
        self,
        conn: ClientConnection,
        request: Request,
        on_end: Callable[[Request, str], None],
    ) -> bool:
        """Start answering ``request`` at once when nothing needs waiting for: a well-formed
        request for an app whose endpoints are known, with an idle connection to the next
        one. ``on_end`` hears the outcome. False: :meth:`answer` must do it, in a task."""
        if request.error is not None or request.upgrade or request.sent:
            return False
        host, refusal = _check(request)
        if refusal is not None:
            return False
        app = self._app_for(host)
        to_api, target = app is None, None
        if app is not None:
            target = self._targets().cached(app)
            if target is None or not target.endpoints:
                return False
            endpoint = self._endpoint(target.next_endpoint())
        elif self.api is not None:
            endpoint = self.api
        else:
            return False
        upstream = self.pool.take_idle(endpoint, conn.loop.time())
        if upstream is None:
            return False  # the turn stays: answer() takes it, with a new connection
        if target is not None:
            target.in_turn()
        chunked, head = self._request_head(conn, request, host, to_api=to_api)
        exchange = self._new_exchange(conn, request, upstream, chunked, to_api=to_api)
        exchange.on_end = on_end
        body = conn.take_body(request, exchange)
        request.sent = True
        exchange.start(head, body)
        return True

    # inside

    def _app_for(self, host: str) -> str | None:
        if host in self._app_of:
            return self._app_of[host]
        app: str | None = self.state.hosts.app_from_host(host)
        app = None if app in RESERVED_APP_NAMES else app
        if len(self._app_of) > 10_000:  # bounded: hosts come from requests
            self._app_of.clear()
        self._app_of[host] = app
        return app

    def _endpoint(self, url: str) -> Endpoint:
        found = self._endpoint_of.get(url)
        if found is None:
            parts = urlsplit(url)
            found = (parts.hostname or "127.0.0.1", parts.port or 80)
            if len(self._endpoint_of) > 10_000:
                self._endpoint_of.clear()
            self._endpoint_of[url] = found
        return found

    def _request_head(
        self, conn: ClientConnection, request: Request, host: str, *, to_api: bool = False
    ) -> tuple[bool, bytes]:
        chunked = any(name.lower() == b"transfer-encoding" for name, _ in request.headers)
        headers = self._headers(conn, request, host, HOP_BY_HOP, to_api=to_api)
        head = wire.request_head(
            request.method, request.target, headers, host.encode("latin-1"), chunked=chunked
        )
        return chunked, head

    def _new_exchange(
        self,
        conn: ClientConnection,
        request: Request,
        upstream: Upstream,
        chunked: bool,
        *,
        to_api: bool = False,
    ) -> Exchange:
        # The API times its own requests; a log follow may be silent for long.
        idle = _NO_LIMIT if to_api else self.idle_secs
        return Exchange(
            conn, request, upstream, self.pool,
            chunked=chunked, idle_secs=idle, stopping=self._is_stopping, to_api=to_api,
        )  # fmt: skip

    def _targets(self) -> AppTargets:
        if self.state.app_targets is None:
            self.state.app_targets = AppTargets(self.state.db)
        targets: AppTargets = self.state.app_targets
        return targets

    async def _lookup(
        self, app: str, *, fresh: bool = False
    ) -> tuple[Target | None, tuple[int, str, str] | None]:
        try:
            target = await self._targets().lookup(app, fresh=fresh)
        except AetherError:
            return None, (503, "service_unavailable", "the control plane's database is down")
        if target is not None and not target.endpoints:
            message = f"app {app!r} has nothing running"
            if target.stopped:
                message = f"app {app!r} is scaled to 0 (aether scale {app} N starts it)"
            return None, (503, "service_unavailable", message)
        return target, None

    def _endpoints(self, tried: set[str], target: Target | None) -> list[Endpoint]:
        found = []
        for endpoint in target.in_turn() if target is not None else ():
            if endpoint not in tried:
                tried.add(endpoint)
                found.append(self._endpoint(endpoint))
        return found

    async def _forward(
        self, conn: ClientConnection, request: Request, app: str, target: Target, host: str
    ) -> bool:
        chunked, head = self._request_head(conn, request, host)
        tried: set[str] = set()
        for fresh in (False, True):  # then the endpoints may have moved (a cutover): look again
            if fresh:
                target = (await self._lookup(app, fresh=True))[0] or target
            for endpoint in self._endpoints(tried, target):
                outcome = await self._exchange(conn, request, endpoint, head, chunked)
                if outcome is not None:
                    return outcome is Outcome.KEEP
                if request.kept is None:
                    break
        keep = request.keep_alive and request.complete and not self.stopping
        message = f"app {app!r} is not answering"
        conn.write(wire.error_response(502, "bad_gateway", message, keep_alive=keep))
        return keep

    async def _to_api(
        self, conn: ClientConnection, request: Request, host: str, api: Endpoint
    ) -> bool:
        if request.upgrade:
            head = self._tunnel_head(conn, request, host, to_api=True)
            upstream = await self.pool.open(api)
            if upstream is not None:
                await Tunnel(conn, upstream, request).run(head)
                return False
        else:
            chunked, head = self._request_head(conn, request, host, to_api=True)
            outcome = await self._exchange(conn, request, api, head, chunked, to_api=True)
            if outcome is not None:
                return outcome is Outcome.KEEP
        message = "the API is not answering (it is stopping); retry"
        conn.write(wire.error_response(503, "service_unavailable", message, keep_alive=False))
        return False

    async def _exchange(
        self,
        conn: ClientConnection,
        request: Request,
        endpoint: Endpoint,
        head: bytes,
        chunked: bool,
        *,
        to_api: bool = False,
    ) -> Outcome | None:
        """Relay ``request`` to ``endpoint``: the outcome, or None when nothing accepted a
        connection there (the request was not sent). A pooled connection the app had closed
        is replaced by a fresh one once, when the request can be sent again."""
        upstream = self.pool.take_idle(endpoint, conn.loop.time())
        while True:
            if request.sent and request.kept is None:  # went once; its body cannot again
                if upstream is not None:
                    upstream.close()
                message = "the app closed the connection early"
                conn.write(wire.error_response(502, "bad_gateway", message, keep_alive=False))
                return Outcome.CLOSE
            if upstream is None:
                upstream = await self.pool.open(endpoint)
                if upstream is None:
                    return None
            if conn.closed:
                self.pool.release(upstream, conn.loop.time())
                return Outcome.CLOSE
            exchange = self._new_exchange(conn, request, upstream, chunked, to_api=to_api)
            body = conn.take_body(request, exchange)
            if request.sent:  # again: everything received so far
                body = list(request.kept or ())
            request.sent = True
            exchange.start(head, body)
            outcome = await exchange.done
            if outcome is not Outcome.STALE:
                return outcome
            upstream = None

    def _headers(
        self,
        conn: ClientConnection,
        request: Request,
        host: str,
        drop: frozenset[bytes],
        *,
        to_api: bool = False,
    ) -> list[wire.Header]:
        return forwarded_headers(
            request.headers,
            drop=drop,
            client=conn.peer,
            scheme=self.scheme,
            host=host,
            trusted_proxies=self.state.settings.trusted_proxies,
            to_api=to_api,
        )

    def _tunnel_head(
        self, conn: ClientConnection, request: Request, host: str, *, to_api: bool = False
    ) -> bytes:
        headers = self._headers(conn, request, host, _TUNNEL_DROP, to_api=to_api)
        headers += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
        return wire.request_head(
            request.method, request.target, headers, host.encode("latin-1"), chunked=False
        )

    async def _tunnel(
        self, conn: ClientConnection, request: Request, app: str, target: Target, host: str
    ) -> None:
        head = self._tunnel_head(conn, request, host)
        tried: set[str] = set()
        for fresh in (False, True):
            if fresh:
                target = (await self._lookup(app, fresh=True))[0] or target
            for endpoint in self._endpoints(tried, target):
                upstream = await self.pool.open(endpoint)
                if upstream is not None:
                    await Tunnel(conn, upstream, request).run(head)
                    return
        conn.write(
            wire.error_response(
                502, "bad_gateway", f"app {app!r} is not answering", keep_alive=False
            )
        )


class Tunnel:
    """A WebSocket: the handshake goes to the app; when it answers ``101`` both sides'
    bytes flow through untouched until either closes. Any other answer is passed on and both
    connections closed, so nothing after a refused upgrade reaches the app unfiltered."""

    def __init__(self, conn: ClientConnection, upstream: Upstream, request: Request) -> None:
        self.conn, self.upstream, self.request = conn, upstream, request
        self.parser = httptools.HttpResponseParser(self)
        self.head = bytearray()
        self.open = False
        self.done: asyncio.Future[None] = conn.loop.create_future()

    async def run(self, head: bytes) -> None:
        self.upstream.receiver = self
        self.upstream.write(head)
        try:
            await self.done
        finally:
            self.upstream.close()
            self.conn.close()

    def upstream_data(self, data: bytes) -> None:
        if self.open:
            self.conn.write(data)
            return
        self.head += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.parser.get_status_code() != 101:
                self._end()
                return
            self.open = True
            self.conn.write(bytes(self.head))
            self.upstream.write(self.conn.open_tunnel(self.upstream, self.request))
        except httptools.HttpParserError:
            self._end()

    def on_message_complete(self) -> None:  # an answer other than 101: passed on, then closed
        if self.parser.get_status_code() == 101:
            return  # the parser stops at the switch: upstream_data opens the tunnel
        self.conn.write(bytes(self.head))
        self._end()

    def upstream_lost(self) -> None:
        if not self.open:
            self.conn.write(bytes(self.head))
        self._end()

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self.conn.pause("upstream")
        else:
            self.conn.resume("upstream")

    def _end(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _check(request: Request) -> tuple[str, str | None]:
    """The request's host, or why the request is refused (smuggling shapes, no host)."""
    hosts = [v for k, v in request.headers if k.lower() == b"host"]
    encodings = [v for k, v in request.headers if k.lower() == b"transfer-encoding"]
    lengths = [v for k, v in request.headers if k.lower() == b"content-length"]
    if len(hosts) != 1:
        return "", "a request needs exactly one Host header"
    if encodings and lengths:
        return "", "a request may not carry both Transfer-Encoding and Content-Length"
    if encodings and (len(encodings) > 1 or encodings[0].strip().lower() != b"chunked"):
        return "", "the only Transfer-Encoding relayed is chunked"
    if request.method == b"CONNECT":
        return "", "CONNECT is not relayed"
    if not request.target.startswith(b"/") and request.target != b"*":
        return "", "the request target must be a path (origin form)"
    if request.upgrade and b"websocket" not in b"".join(
        v.lower() for k, v in request.headers if k.lower() == b"upgrade"
    ):
        return "", "only WebSocket upgrades are relayed"
    return hosts[0].decode("latin-1"), None

"""Host-header routing: ``http://<app>.localhost:<port>/`` is proxied to the app's current
process, so an app's URL survives redeploys. Requests for other hosts pass through.

The target is the endpoint of the app's newest ``running`` deployment, read from the store on
every request: the worker flips it in one transaction at cutover, before the old process is
stopped. Request and response bodies stream both ways (HTTP/1.1 framing by ``h11``), over
upstream connections kept open between requests (:class:`aether.upstream.Pool`). When the upstream refuses the connection the endpoint is
looked up once more and the request retried if it moved (a cutover in between). No app →
404, nothing running → 503, upstream unreachable → 502, silent for 5 minutes → 504, all as
the JSON error envelope. WebSocket upgrades are relayed too (:mod:`aether.server.ws_proxy`);
when a WebSocket's app cannot be reached the upgrade is refused (403).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import h11
from starlette.types import ASGIApp, Receive, Scope, Send

from aether import upstream as app_http
from aether.errors import AetherError, BadRequest
from aether.server.app_targets import AppTargets, Target
from aether.server.errors import envelope_response
from aether.server.forwarding import HOP_BY_HOP, check_framing, forwarded_headers
from aether.server.ws_proxy import HANDSHAKE_HEADERS, relay_websocket

log = logging.getLogger("aether.proxy")

# An app silent this long (no header, no body bytes) gets its request ended: 504 before the
# response started, a cut-off body after.
UPSTREAM_IDLE_SECS = 300.0
# A request body up to this size is kept while it is sent, so the request can go again on a
# fresh connection when a pooled one turns out closed by the app; larger ones cannot.
REPLAY_LIMIT = 1 << 20


def _host_header(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return value.decode("latin-1")
    return ""


class HostProxyMiddleware:
    """Outermost ASGI middleware: app hosts go to the app, the rest to the API."""

    def __init__(self, app: ASGIApp, *, idle_secs: float = UPSTREAM_IDLE_SECS) -> None:
        self.app = app
        self.idle_secs = idle_secs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = _server_state(scope)
        app_name = None
        if scope["type"] in ("http", "websocket") and state is not None:
            app_name = state.hosts.app_from_host(_host_header(scope))
        if app_name is None:
            await self.app(scope, receive, send)
            return
        await _proxy(state, app_name, scope, receive, send, self.idle_secs)


def _server_state(scope: Scope) -> Any:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "aether", None)


async def _proxy(
    state: Any, app_name: str, scope: Scope, receive: Receive, send: Send, idle_secs: float
) -> None:
    if scope["type"] == "http":
        try:
            check_framing(scope.get("headers", ()))
        except BadRequest as exc:
            await _error(scope, send, 400, exc.code, str(exc))
            return
    headers = _forwarded(scope, state.settings.trusted_proxies)
    targets = _targets(state)
    try:
        target = await targets.lookup(app_name)
    except AetherError:
        await _error(
            scope, send, 503, "service_unavailable", "the control plane's database is down"
        )
        return
    if target is None:
        await _error(scope, send, 404, "not_found", f"no app named {app_name!r}")
        return
    if not target.endpoints:
        message = f"app {app_name!r} has nothing running"
        if target.stopped:
            message = f"app {app_name!r} is scaled to 0 (aether scale {app_name} N starts it)"
        await _error(scope, send, 503, "service_unavailable", message)
        return
    if scope["type"] == "websocket":
        await _websocket(targets, app_name, target, scope, receive, send, headers)
        return
    pool: app_http.Pool = state.upstream_pool
    body = _RequestBody(receive)
    tried: set[str] = set()
    for fresh in (False, True):  # then the endpoints may have moved (a cutover): look again
        if fresh:
            target = await _lookup_again(targets, app_name)
        for endpoint in target.in_turn() if target else ():
            if endpoint in tried:
                continue
            tried.add(endpoint)
            try:
                await _forward(pool, endpoint, scope, headers, body, send, idle_secs)
                return
            except _Unreachable:
                if not body.replayable:
                    break
    await _error(scope, send, 502, "bad_gateway", f"app {app_name!r} is not answering")


def _targets(state: Any) -> AppTargets:
    if state.app_targets is None:
        state.app_targets = AppTargets(state.db)
    targets: AppTargets = state.app_targets
    return targets


async def _lookup_again(targets: AppTargets, app_name: str) -> Target | None:
    try:
        return await targets.lookup(app_name, fresh=True)
    except AetherError:
        return None


async def _websocket(
    targets: AppTargets,
    app_name: str,
    target: Target,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
) -> None:
    upstream = None
    for fresh in (False, True):
        if fresh:
            target = await _lookup_again(targets, app_name) or target
        for endpoint in target.in_turn():
            upstream = await _connect(endpoint)
            if upstream is not None:
                break
        if upstream is not None:
            break
    if upstream is None:
        await _error(scope, send, 502, "bad_gateway", f"app {app_name!r} is not answering")
        return
    reader, writer = upstream
    try:
        await relay_websocket(scope, receive, send, reader, writer, _host_header(scope), headers)
    finally:
        await app_http.close(writer)


async def _connect(endpoint: str) -> app_http.Streams | None:
    parts = urlsplit(endpoint)
    return await app_http.connect(parts.hostname, parts.port or 80)


async def _open(
    pool: app_http.Pool, endpoint: str, *, fresh: bool = False
) -> app_http.Connection | None:
    parts = urlsplit(endpoint)
    return await pool.acquire(parts.hostname or "127.0.0.1", parts.port or 80, fresh=fresh)


class _Unreachable(Exception):
    """Nothing accepted a connection to the endpoint, and the request was not sent: it may
    go to another endpoint."""


class _Stale(Exception):
    """A pooled connection the app had closed: the request may go again on a fresh one."""


class _Dropped(Exception):
    """The exchange ended early: the client left, or it was answered an error. The
    connection is not reused."""


class _RequestBody:
    """The request body as the client sends it, kept (up to REPLAY_LIMIT bytes) so that a
    request which met a stale pooled connection can be sent again."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._kept: list[bytes] = []
        self._size = 0
        self._complete = False
        self.replayable = True

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._kept:
            yield chunk
        while not self._complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _Dropped
            chunk = message.get("body", b"")
            self._complete = not message.get("more_body", False)
            if not chunk:
                continue
            self._size += len(chunk)
            if self.replayable and self._size <= REPLAY_LIMIT:
                self._kept.append(chunk)
            else:
                self.replayable, self._kept = False, []
            yield chunk


async def _forward(
    pool: app_http.Pool,
    endpoint: str,
    scope: Scope,
    headers: list[tuple[bytes, bytes]],
    body: _RequestBody,
    send: Send,
    idle_secs: float,
) -> None:
    """Send the request to ``endpoint`` and relay the answer; a stale pooled connection is
    replaced by a fresh one once, when the request can be sent again."""
    conn = await _open(pool, endpoint)
    if conn is None:
        raise _Unreachable
    kept = False
    try:
        try:
            await _exchange(conn, scope, headers, body, send, idle_secs)
        except _Stale:
            await pool.discard(conn)
            fresh = await _open(pool, endpoint, fresh=True) if body.replayable else None
            if fresh is None:
                raise _Unreachable from None
            conn = fresh
            await _exchange(conn, scope, headers, body, send, idle_secs)
        await pool.release(conn)
        kept = True
    except _Dropped:
        pass
    finally:
        if not kept:
            await pool.discard(conn)


async def _exchange(
    conn: app_http.Connection,
    scope: Scope,
    headers: list[tuple[bytes, bytes]],
    body: _RequestBody,
    send: Send,
    idle_secs: float,
) -> None:
    parser, writer = conn.h11, conn.writer
    try:
        writer.write(parser.send(_request(scope, headers)))
        async for chunk in body.chunks():
            writer.write(parser.send(h11.Data(data=chunk)))
            await writer.drain()
        writer.write(parser.send(h11.EndOfMessage()))
        await writer.drain()
    except OSError as exc:
        if conn.reused:
            raise _Stale from exc
        await _error(scope, send, 502, "bad_gateway", "the app closed the connection early")
        raise _Dropped from exc
    await _relay_response(scope, conn, send, idle_secs)


def _forwarded(scope: Scope, trusted_proxies: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """The client's headers as the app may see them (:mod:`aether.server.forwarding`)."""
    client = scope.get("client") or ("", 0)
    return forwarded_headers(
        scope.get("headers", ()),
        drop=HOP_BY_HOP if scope["type"] == "http" else HANDSHAKE_HEADERS,
        client=str(client[0]),
        scheme=scope.get("scheme", "http").replace("ws", "http"),
        host=_host_header(scope),
        trusted_proxies=trusted_proxies,
    )


def _request(scope: Scope, forwarded: list[tuple[bytes, bytes]]) -> h11.Request:
    headers = list(forwarded)
    names = {k.lower() for k, _ in headers}
    chunked = any(k == b"transfer-encoding" for k, _ in scope.get("headers", ()))
    if b"content-length" not in names and (chunked or scope["method"] not in ("GET", "HEAD")):
        headers.append((b"transfer-encoding", b"chunked"))
    headers.append((b"host", _host_header(scope).encode("latin-1") or b"localhost"))
    target = scope.get("raw_path") or scope["path"].encode("utf-8")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    return h11.Request(method=scope["method"], target=target, headers=headers)


async def _relay_response(scope: Scope, conn: app_http.Connection, send: Send, idle: float) -> None:
    started = False
    try:
        while True:
            event = await app_http.next_event(conn.h11, conn.reader, idle)
            if isinstance(event, h11.Response):
                headers = [(k, v) for k, v in event.headers if k.lower() not in HOP_BY_HOP]
                await send(
                    {"type": "http.response.start", "status": event.status_code, "headers": headers}
                )
                started = True
            elif isinstance(event, h11.Data):
                await send(
                    {"type": "http.response.body", "body": bytes(event.data), "more_body": True}
                )
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("the app closed the connection")
    except TimeoutError:
        log.warning("upstream silent for %ss", idle)
        if not started:
            await _error(scope, send, 504, "gateway_timeout", "the app did not answer in time")
        raise _Dropped from None
    except (h11.RemoteProtocolError, OSError) as exc:
        if not started and conn.reused:
            raise _Stale from exc
        log.warning("upstream broke off: %s", exc)
        if not started:
            await _error(scope, send, 502, "bad_gateway", "the app closed the connection early")
        raise _Dropped from exc
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _error(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":
        log.warning("refusing a WebSocket for %s: %s", _host_header(scope), message)
        await send({"type": "websocket.close", "code": 1011})
        return
    response = envelope_response(status, code, message, request_id=None)

    async def no_body() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)

"""Host-header routing: ``http://<app>.localhost:<port>/`` is proxied to the app's current
process, so an app's URL survives redeploys. Requests for other hosts pass through.

The target is the endpoint of the app's newest ``running`` deployment, read from the store on
every request: the worker flips it in one transaction at cutover, before the old process is
stopped. Request and response bodies stream both ways (HTTP/1.1 framing by ``h11``; one
upstream connection per request). When the upstream refuses the connection the endpoint is
looked up once more and the request retried if it moved (a cutover in between). No app →
404, nothing running → 503, upstream unreachable → 502, silent for 5 minutes → 504, all as
the JSON error envelope. WebSocket upgrades are relayed too (:mod:`aether.server.ws_proxy`);
when a WebSocket's app cannot be reached the upgrade is refused (403).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import h11
from starlette.types import ASGIApp, Receive, Scope, Send

from aether import upstream as app_http
from aether.errors import AetherError, BadRequest
from aether.server.errors import envelope_response
from aether.server.forwarding import check_framing, forwarded_headers
from aether.server.ws_proxy import HANDSHAKE_HEADERS, relay_websocket
from aether.store import rollouts

log = logging.getLogger("aether.proxy")

_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
}
# An app silent this long (no header, no body bytes) gets its request ended: 504 before the
# response started, a cut-off body after.
UPSTREAM_IDLE_SECS = 300.0


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
    db, state_trusted = state.db, state.settings.trusted_proxies
    if scope["type"] == "http":
        try:
            check_framing(scope.get("headers", ()))
        except BadRequest as exc:
            await _error(scope, send, 400, exc.code, str(exc))
            return
    try:
        target = await rollouts.running_endpoint(db, app_name)
    except AetherError:
        await _error(
            scope, send, 503, "service_unavailable", "the control plane's database is down"
        )
        return
    if target is None:
        await _error(scope, send, 404, "not_found", f"no app named {app_name!r}")
        return
    if not target["endpoint"]:
        await _error(
            scope, send, 503, "service_unavailable", f"app {app_name!r} has nothing running"
        )
        return
    upstream = await _connect(target["endpoint"])
    if upstream is None:  # the endpoint may have moved by a cutover: look once more
        again = await rollouts.running_endpoint(db, app_name)
        if again and again["endpoint"] and again["endpoint"] != target["endpoint"]:
            upstream = await _connect(again["endpoint"])
    if upstream is None:
        await _error(scope, send, 502, "bad_gateway", f"app {app_name!r} is not answering")
        return
    reader, writer = upstream
    headers = _forwarded(scope, state_trusted)
    try:
        if scope["type"] == "websocket":
            await relay_websocket(
                scope, receive, send, reader, writer, _host_header(scope), headers
            )
        else:
            await _exchange(scope, receive, send, reader, writer, idle_secs, headers)
    finally:
        await app_http.close(writer)


async def _connect(endpoint: str) -> app_http.Streams | None:
    parts = urlsplit(endpoint)
    return await app_http.connect(parts.hostname, parts.port or 80)


async def _exchange(
    scope: Scope,
    receive: Receive,
    send: Send,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    idle_secs: float,
    headers: list[tuple[bytes, bytes]],
) -> None:
    conn = h11.Connection(h11.CLIENT)
    writer.write(conn.send(_request(scope, headers)))
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            writer.write(conn.send(h11.Data(data=body)))
            await writer.drain()
        more = message.get("more_body", False)
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
    await _relay_response(scope, conn, reader, send, idle_secs)


def _forwarded(scope: Scope, trusted_proxies: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    client = scope.get("client") or ("", 0)
    scheme = scope.get("scheme", "http").replace("ws", "http")
    return forwarded_headers(
        scope.get("headers", ()),
        drop=_HOP_BY_HOP if scope["type"] == "http" else HANDSHAKE_HEADERS,
        client=str(client[0]),
        scheme=scheme,
        host=_host_header(scope),
        trusted_proxies=trusted_proxies,
    )


def _request(scope: Scope, headers: list[tuple[bytes, bytes]]) -> h11.Request:
    headers = list(headers)
    names = {k.lower() for k, _ in headers}
    chunked = any(k == b"transfer-encoding" for k, _ in scope.get("headers", ()))
    if b"content-length" not in names and (chunked or scope["method"] not in ("GET", "HEAD")):
        headers.append((b"transfer-encoding", b"chunked"))
    headers += [
        (b"host", _host_header(scope).encode("latin-1") or b"localhost"),
        (b"connection", b"close"),
    ]
    target = scope.get("raw_path") or scope["path"].encode("utf-8")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    return h11.Request(method=scope["method"], target=target, headers=headers)


async def _relay_response(
    scope: Scope, conn: h11.Connection, reader: asyncio.StreamReader, send: Send, idle: float
) -> None:
    started = False
    try:
        while True:
            event = await app_http.next_event(conn, reader, idle)
            if isinstance(event, h11.Response):
                headers = [(k, v) for k, v in event.headers if k.lower() not in _HOP_BY_HOP]
                await send(
                    {"type": "http.response.start", "status": event.status_code, "headers": headers}
                )
                started = True
            elif isinstance(event, h11.Data):
                await send(
                    {"type": "http.response.body", "body": bytes(event.data), "more_body": True}
                )
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    except TimeoutError:
        log.warning("upstream silent for %ss", idle)
        if not started:
            await _error(scope, send, 504, "gateway_timeout", "the app did not answer in time")
            return
    except (h11.RemoteProtocolError, OSError) as exc:
        log.warning("upstream broke off: %s", exc)
        if not started:
            await _error(scope, send, 502, "bad_gateway", "the app closed the connection early")
            return
    if started:
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

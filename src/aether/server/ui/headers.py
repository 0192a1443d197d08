"""The dashboard's response headers: a strict Content-Security-Policy (scripts, styles and
connections from this origin only — no inline script or style anywhere), no framing, no
referrer to other sites (a one-time link never leaks through one), no MIME sniffing, and pages never
cached."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on its own
    # form posts, and the Origin check (aether.server.ui.session) needs the real one.
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_STATIC_PREFIX = "/ui/static/"


class SecurityHeadersMiddleware:
    """Adds :data:`HEADERS` to every dashboard response; pages get ``no-store`` too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(_STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {b"cache-control"} if not static else set()
                names.update(name for name, _ in HEADERS)
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in names]
                kept.extend(HEADERS)
                if not static:
                    kept.append((b"cache-control", b"no-store"))
                message["headers"] = kept
            await send(message)

        await self.app(scope, receive, send_with_headers)

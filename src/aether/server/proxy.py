"""Host-header routing: ``http://<app>.localhost:<port>/`` is proxied to the app's current
process, so an app's URL survives redeploys. Requests for other hosts pass through."""

from __future__ import annotations

from typing import Any


class HostProxyMiddleware:
    """ASGI middleware; pass-through until the local runtime publishes endpoints."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

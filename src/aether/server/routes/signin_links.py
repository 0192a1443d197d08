"""``POST /signin-links``: a one-time link that signs a browser in to the dashboard as the
caller's own token (``aether dashboard`` opens it). The link holds a random code, never the
token, is good for one use within ten minutes, and gives the browser no more than the
token itself may do."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from aether.server.auth import ROLES_THAT_READ, require_role
from aether.server.openapi import STR, obj, operation
from aether.server.responses import JSONResponse
from aether.server.state import get_state
from aether.store import dashboard_sessions
from aether.store.clock import now_iso


def signin_url(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/ui/signin?link={code}"


async def create_link(request: Request) -> JSONResponse:
    who = require_role(request, *ROLES_THAT_READ)
    state = get_state(request)
    ttl = dashboard_sessions.LINK_TTL_SECS
    code = await dashboard_sessions.create_link(state.db, who.token_id, ttl_secs=ttl)
    return JSONResponse(
        {"url": signin_url(state.public_url, code), "expires_at": now_iso(ttl)}, status_code=201
    )


ROUTES = [Route("/signin-links", create_link, methods=["POST"])]
OPENAPI = {
    "/signin-links": {
        "post": operation(
            "A one-time dashboard sign-in link for the caller's token (10 minutes, one use)",
            status=201,
            response=obj({"url": STR, "expires_at": STR}),
            errors=(401, 403),
        )
    }
}

"""An app's instances: what runs (``GET /apps/{app}/status``, ``aether ps``/``status``) and
a rolling restart of the release that runs (``POST /apps/{app}/restart``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from aether.models import AppStatus, Rollout, deployment_from
from aether.server import releasing
from aether.server.app_status import app_status
from aether.server.auth import require_app_access, require_role
from aether.server.openapi import operation, param, schema
from aether.server.responses import JSONResponse
from aether.server.state import get_state
from aether.store import apps as app_store


async def status(request: Request) -> JSONResponse:
    require_role(request, "deployer", "reader")
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app, write=False)
    return JSONResponse(await app_status(state, app))


async def restart(request: Request) -> JSONResponse:
    require_role(request, "deployer")
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    who = require_app_access(request, app, write=True)
    outcome = await releasing.restart(state, app, who.user_id)
    answer: Rollout = {
        "release": await releasing.shown_one(state.db, outcome.release),
        "deployment": deployment_from(outcome.deployment, state.app_url(app["name"])),
        "unchanged": False,
    }
    return JSONResponse(answer, status_code=201)


ROUTES = [
    Route("/apps/{app}/status", status, methods=["GET"]),
    Route("/apps/{app}/restart", restart, methods=["POST"]),
]

_APP = [param("app")]
OPENAPI = {
    "/apps/{app}/status": {
        "get": operation(
            "What runs: the release, each instance (state, health, restarts, host, worker),"
            " the last rollout, and whether a live worker holds the app",
            params=_APP,
            response=schema(AppStatus),
        )
    },
    "/apps/{app}/restart": {
        "post": operation(
            "A rolling restart of the release that runs: a new rollout of it, health-gated"
            " like a deploy (409 when nothing runs or a rollout is under way)",
            status=201,
            params=_APP,
            response=schema(Rollout),
            errors=(401, 403, 404, 409),
        )
    },
}

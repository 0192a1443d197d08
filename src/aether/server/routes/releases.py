"""Releases: an app's numbered releases (newest first), one release, and scaling (a new
release of the current one with another replica count)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from aether.errors import NotFound
from aether.models import (
    Release,
    ReleasePage,
    Rollout,
    ScaleRequest,
    check_replicas,
    deployment_from,
    release_number,
)
from aether.server import releasing
from aether.server.auth import require_app_access, require_role
from aether.server.jsonbody import MAX_INT, body_types, int_param, read_json
from aether.server.openapi import operation, param, schema
from aether.server.responses import JSONResponse
from aether.server.state import get_state
from aether.store import apps as app_store
from aether.store import releases as store

MAX_PAGE = 100
DEFAULT_PAGE = 20
_SCALE_FIELDS, _SCALE_OPTIONS = body_types(ScaleRequest)


def _int_param(request: Request, name: str, *, low: int, high: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    text = raw[1:] if name == "before" and raw[:1] in ("v", "V") else raw
    return int_param(text, name, default=low, minimum=low, maximum=high or MAX_INT)


async def list_releases(request: Request) -> JSONResponse:
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app, write=False)
    limit = _int_param(request, "limit", low=1, high=MAX_PAGE) or DEFAULT_PAGE
    before = _int_param(request, "before", low=1)
    rows = await store.list_page(state.db, app["id"], limit=limit + 1, before=before)
    page: ReleasePage = {
        "releases": await releasing.shown(state.db, rows[:limit]),
        "next_cursor": str(rows[limit - 1]["version"]) if len(rows) > limit else None,
    }
    return JSONResponse(page)


async def get_release(request: Request) -> JSONResponse:
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app, write=False)
    version = release_number(request.path_params["version"])
    row = await store.get_by_version(state.db, app["id"], version) if version else None
    if row is None:
        raise NotFound(f"app {app['name']!r} has no release {request.path_params['version']}")
    return JSONResponse(await releasing.shown_one(state.db, row))


async def scale(request: Request) -> JSONResponse:
    require_role(request, "deployer")
    body = await read_json(request, required=_SCALE_FIELDS, optional=_SCALE_OPTIONS)
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    who = require_app_access(request, app, write=True)
    replicas = check_replicas(body["replicas"], minimum=0)
    outcome = await releasing.scale(state, app, who.user_id, replicas)
    answer: Rollout = {
        "release": await releasing.shown_one(state.db, outcome.release),
        "deployment": deployment_from(outcome.deployment, state.app_url(app["name"])),
        "unchanged": not outcome.created,
    }
    return JSONResponse(answer, status_code=201 if outcome.created else 200)


ROUTES = [
    Route("/apps/{app}/releases", list_releases, methods=["GET"]),
    Route("/apps/{app}/releases/{version}", get_release, methods=["GET"]),
    Route("/apps/{app}/scale", scale, methods=["POST"]),
]

RELEASE_SCHEMA = schema(Release)
_APP = [param("app")]
OPENAPI = {
    "/apps/{app}/releases": {
        "get": operation(
            "An app's releases, newest first (values never: names and fingerprints)",
            params=[
                *_APP,
                param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                param("before", "query", {"type": "string"}),
            ],
            response=schema(ReleasePage),
        )
    },
    "/apps/{app}/releases/{version}": {
        "get": operation(
            "One release (v3 or 3)",
            params=[*_APP, param("version")],
            response=RELEASE_SCHEMA,
        )
    },
    "/apps/{app}/scale": {
        "post": operation(
            "Run N replicas (0: stopped, kept): a new release of the current one (200 and"
            " unchanged when it already runs N)",
            status=201,
            params=_APP,
            request=schema(ScaleRequest, additionalProperties=False),
            response=schema(Rollout),
            errors=(400, 401, 403, 404, 409),
        )
    },
}

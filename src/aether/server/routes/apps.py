"""``/apps``: create (the caller becomes the owner), list with current deployments, show,
delete (admin or owner)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aether.errors import AetherError
from aether.models import (
    App,
    AppInfo,
    AppWithCurrent,
    app_from,
    check_app_name,
    deployment_from,
)
from aether.server import releasing
from aether.server.auth import require_app_access, require_role
from aether.server.jsonbody import read_json
from aether.server.openapi import STR, obj, operation, param, schema
from aether.server.responses import JSONResponse
from aether.server.state import ServerState, get_state
from aether.store import apps as app_store
from aether.store import config_vars
from aether.store import releases as release_store
from aether.store.database import Row

log = logging.getLogger(__name__)


def app_json(row: Row, state: ServerState) -> App:
    return app_from(row, state.app_url(row["name"]))


def _with_current(row: Row, current: Row | None, state: ServerState) -> AppWithCurrent:
    if current is None:
        return {**app_json(row, state), "current": None}
    deployment = deployment_from(current, state.app_url(current["app_name"]))
    return {**app_json(row, state), "current": deployment}


async def create_app(request: Request) -> JSONResponse:
    who = require_role(request, "deployer")
    body = await read_json(request, required={"name": str})
    name = check_app_name(body["name"])
    state = get_state(request)
    state.hosts.check_new_app_name(name)
    row = await app_store.create_app(state.db, name, owner=who.user_id)
    return JSONResponse(app_json(row, state), status_code=201)


async def list_apps(request: Request) -> JSONResponse:
    require_role(request, "deployer", "reader")
    state = get_state(request)
    rows = await app_store.list_apps(state.db)
    current = await app_store.current_deployments(state.db)
    return JSONResponse(
        {"apps": [_with_current(row, current.get(row["id"]), state) for row in rows]}
    )


async def load_app(request: Request, *, write: bool) -> Row:
    """The app named in the path, after the caller's access to it is checked."""
    state = get_state(request)
    row = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, row, write=write)
    return row


async def get_app(request: Request) -> JSONResponse:
    row = await load_app(request, write=False)
    state = get_state(request)
    current = (await app_store.current_deployments(state.db)).get(row["id"])
    release = await release_store.base_release(state.db, row["id"])
    config = await config_vars.current(state.db, row["id"])
    info: AppInfo = {
        **_with_current(row, current, state),
        "release": await releasing.shown_one(state.db, release) if release else None,
        "config_version": config.version,
        "config_vars": sorted(config.vars),
    }
    return JSONResponse(info)


async def delete_app(request: Request) -> Response:
    """Destroy the app: its rows (releases, config, deployments, keys, pull tokens), then the
    objects of its artifacts that no other app runs (those pass to that app); the worker
    stops what runs and deletes its logs."""
    row = await load_app(request, write=True)
    state = get_state(request)
    artifacts = await app_store.destroy_app(state.db, row["id"])
    for artifact in artifacts:
        await _delete_object(state, artifact["storage_key"])
    log.info("app %s destroyed (%d artifact(s) freed)", row["name"], len(artifacts))
    return Response(status_code=204)


async def _delete_object(state: ServerState, key: str) -> None:
    # The rows are gone already: a leftover object is only wasted space, so log and go on.
    try:
        await state.blobs.delete(key)
    except AetherError as exc:
        log.warning("could not delete %s after deleting its app: %s", key, exc.message)


ROUTES = [
    Route("/apps", create_app, methods=["POST"]),
    Route("/apps", list_apps, methods=["GET"]),
    Route("/apps/{app}", get_app, methods=["GET"]),
    Route("/apps/{app}", delete_app, methods=["DELETE"]),
]

APP_SCHEMA = schema(App)
APP_WITH_CURRENT = schema(AppWithCurrent)
_APP = [param("app")]
OPENAPI = {
    "/apps": {
        "post": operation(
            "Create an app (the caller becomes its owner)",
            status=201,
            request=obj({"name": STR}, additionalProperties=False),
            response=APP_SCHEMA,
            errors=(400, 401, 403, 409),
        ),
        "get": operation(
            "List apps with their current deployment",
            response=obj({"apps": {"type": "array", "items": APP_WITH_CURRENT}}),
            errors=(401, 403),
        ),
    },
    "/apps/{app}": {
        "get": operation(
            "Show an app: its current deployment and release, config version and var names",
            params=_APP,
            response=schema(AppInfo),
        ),
        "delete": operation(
            "Destroy an app (admin or owner): the runtime stops it; its releases, config,"
            " deployments, logs and pull tokens go, and the artifacts no other app runs",
            status=204,
            params=_APP,
            errors=(401, 403, 404),
        ),
    },
}

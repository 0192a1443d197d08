"""An app's config vars: ``GET /apps/{app}/config`` (names and fingerprints; values only with
``reveal=true`` for a role that may deploy the app) and ``PATCH /apps/{app}/config`` (set and
unset in one new config version, rolled out as a release unless ``restart`` is false)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from aether.errors import BadRequest
from aether.models import (
    AppConfig,
    ConfigChange,
    ConfigChanged,
    ConfigVar,
    check_config_name,
    check_config_vars,
    deployment_from,
)
from aether.server import releasing
from aether.server.auth import require_app_access, require_role
from aether.server.jsonbody import body_types, read_json
from aether.server.openapi import BOOL, operation, param, schema
from aether.server.responses import JSONResponse
from aether.server.state import ServerState, get_state
from aether.store import apps as app_store
from aether.store import config_vars
from aether.store import releases as release_store
from aether.store.database import Row

_CHANGE_FIELDS, _CHANGE_OPTIONS = body_types(ConfigChange)


async def get_config(request: Request) -> JSONResponse:
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    reveal = request.query_params.get("reveal", "").lower() in ("1", "true", "yes")
    # Names for every reader; values only for who may deploy the app (admin, its owner).
    require_app_access(request, app, write=reveal)
    snapshot = await config_vars.current(state.db, app["id"])
    return JSONResponse(await config_listing(state, app, snapshot, reveal=reveal))


async def config_listing(
    state: ServerState, app: Row, snapshot: config_vars.Snapshot, *, reveal: bool = False
) -> AppConfig:
    desired = await release_store.desired(state.db, app["id"])
    listed: list[ConfigVar] = []
    for name, sealed in snapshot.vars.items():
        item: ConfigVar = {"name": name, "fingerprint": sealed["fp"]}
        if reveal:
            item["value"] = state.keyring.unseal(sealed, app_id=app["id"], name=name)
        listed.append(item)
    return {
        "app_name": app["name"],
        "version": snapshot.version,
        "release_config_version": int(desired["config_version"]) if desired else None,
        "vars": listed,
    }


async def change_config(request: Request) -> JSONResponse:
    require_role(request, "deployer")  # before reading the body: readers learn nothing more
    body = await read_json(request, required=_CHANGE_FIELDS, optional=_CHANGE_OPTIONS)
    set_vars = check_config_vars(body.get("set") or {})
    unset = [check_config_name(name) for name in _names(body.get("unset") or [])]
    both = sorted(set(set_vars) & set(unset))
    if both:
        raise BadRequest(f"{both[0]} is both set and unset in one change")
    if not set_vars and not unset:
        raise BadRequest("nothing to change: give 'set' and/or 'unset'")
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    who = require_app_access(request, app, write=True)
    outcome = await releasing.change_config(
        state, app, who.user_id, set_vars=set_vars, unset=unset, restart=body.get("restart", True)
    )
    rollout = outcome.rollout
    answer: ConfigChanged = {
        "config": await config_listing(state, app, outcome.snapshot),
        "changed": outcome.changed,
        "not_set": outcome.not_set,
        "release": await releasing.shown_one(state.db, rollout.release) if rollout else None,
        "deployment": (
            deployment_from(rollout.deployment, state.app_url(app["name"])) if rollout else None
        ),
    }
    return JSONResponse(answer)


def _names(value: list[object]) -> list[object]:
    if len(value) > 1000:
        raise BadRequest("field 'unset' names at most 1000 config vars")
    return value


ROUTES = [
    Route("/apps/{app}/config", get_config, methods=["GET"]),
    Route("/apps/{app}/config", change_config, methods=["PATCH"]),
]

_APP = [param("app")]
OPENAPI = {
    "/apps/{app}/config": {
        "get": operation(
            "An app's config vars: names and fingerprints; values with reveal=true (admin or"
            " the app's owner)",
            params=[*_APP, param("reveal", "query", BOOL)],
            response=schema(AppConfig),
        ),
        "patch": operation(
            "Set and unset config vars (one new config version); rolled out as a release of"
            " the current code unless restart is false (staged for the next deploy)",
            params=_APP,
            request=schema(ConfigChange, additionalProperties=False),
            response=schema(ConfigChanged),
            errors=(400, 401, 403, 404, 413, 503),
        ),
    }
}

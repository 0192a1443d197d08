"""``/apps/{app}/public-keys``: Ed25519 keys that artifact signatures of the app must match."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from aether.errors import BadRequest, NotFound
from aether.pack.signing import is_hex_key, is_valid_public_key
from aether.server.auth import require_app_access, require_role
from aether.server.jsonbody import read_json
from aether.server.openapi import BOOL, STR, obj, operation, param
from aether.server.responses import JSONResponse
from aether.server.state import get_state
from aether.store import apps as app_store
from aether.store import public_keys as public_key_store
from aether.store.database import Row


def key_json(row: Row) -> dict[str, Any]:
    return {
        "app_id": row["app_id"],
        "public_key_hex": row["public_key_hex"],
        "active": bool(row["active"]),
        "created_at": row["created_at"],
    }


def check_public_key(value: str) -> str:
    value = value.strip().lower()
    if not is_hex_key(value):
        raise BadRequest("field 'public_key_hex' must be 64 hex characters (32 bytes)")
    if not is_valid_public_key(value):
        raise BadRequest("field 'public_key_hex' is not a valid Ed25519 public key")
    return value


async def add_key(request: Request) -> JSONResponse:
    require_role(request, "deployer")
    body = await read_json(request, required={"public_key_hex": str})
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app, write=True)
    row, created = await public_key_store.add_key(
        state.db, app["id"], check_public_key(body["public_key_hex"])
    )
    return JSONResponse(key_json(row), status_code=201 if created else 200)


async def list_keys(request: Request) -> JSONResponse:
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app, write=False)
    rows = await public_key_store.list_keys(state.db, app["id"])
    return JSONResponse({"public_keys": [key_json(row) for row in rows]})


async def deactivate_key(request: Request) -> JSONResponse:
    state = get_state(request)
    app = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app, write=True)
    key = request.path_params["public_key_hex"].lower()
    row = await public_key_store.get_key(state.db, app["id"], key)
    if row is None:
        raise NotFound(f"app {app['name']!r} has no public key {key}")
    row = await public_key_store.deactivate_key(state.db, app["id"], key)
    assert row is not None
    return JSONResponse(key_json(row))


ROUTES = [
    Route("/apps/{app}/public-keys", add_key, methods=["POST"]),
    Route("/apps/{app}/public-keys", list_keys, methods=["GET"]),
    Route("/apps/{app}/public-keys/{public_key_hex}", deactivate_key, methods=["DELETE"]),
]

KEY_SCHEMA = obj({"app_id": STR, "public_key_hex": STR, "active": BOOL, "created_at": STR})
_APP = [param("app")]
OPENAPI = {
    "/apps/{app}/public-keys": {
        "post": operation(
            "Register an Ed25519 public key (201; 200 when it was registered before)",
            status=201,
            params=_APP,
            request=obj({"public_key_hex": STR}, additionalProperties=False),
            response=KEY_SCHEMA,
        ),
        "get": operation(
            "An app's public keys",
            params=_APP,
            response=obj({"public_keys": {"type": "array", "items": KEY_SCHEMA}}),
        ),
    },
    "/apps/{app}/public-keys/{public_key_hex}": {
        "delete": operation(
            "Deactivate a public key",
            params=[*_APP, param("public_key_hex")],
            response=KEY_SCHEMA,
        )
    },
}

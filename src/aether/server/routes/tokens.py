"""Tokens over the API: who am I, create (admin), rotate my token, revoke, list (admin)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aether.errors import BadRequest, Forbidden, NotFound
from aether.models import ROLES
from aether.server.auth import principal, require_role
from aether.server.jsonbody import read_json
from aether.server.openapi import NULLABLE_STR, STR, obj, operation, param
from aether.server.responses import JSONResponse
from aether.server.state import get_state
from aether.store import tokens as token_store
from aether.store.database import Row

MAX_TTL_SECS = 10 * 365 * 86_400


async def whoami(request: Request) -> JSONResponse:
    who = principal(request)
    return JSONResponse(
        {"user_id": who.user_id, "name": who.name, "role": who.role, "token_id": who.token_id}
    )


def token_json(row: Row) -> dict[str, Any]:
    keys = ("id", "user_id", "email", "name", "role", "created_at", "expires_at", "last_used_at")
    return {key: row.get(key) for key in keys}


async def create_token(request: Request) -> JSONResponse:
    require_role(request, "admin")
    body = await read_json(
        request,
        required={"name": str, "role": str},
        optional={"email": (str, type(None)), "expires_in_secs": (int, type(None))},
    )
    if body["role"] not in ROLES:
        raise BadRequest(f"field 'role' must be one of: {', '.join(ROLES)}")
    if not body["name"].strip() or len(body["name"]) > 200:
        raise BadRequest("field 'name' must be 1-200 characters")
    ttl = body.get("expires_in_secs")
    if ttl is not None and not 1 <= ttl <= MAX_TTL_SECS:
        raise BadRequest(f"field 'expires_in_secs' must be between 1 and {MAX_TTL_SECS}")
    issued = await token_store.create_token(
        get_state(request).db,
        name=body["name"],
        role=body["role"],
        email=body.get("email"),
        ttl_secs=ttl,
    )
    return JSONResponse(issued.as_json(), status_code=201)


async def list_tokens(request: Request) -> JSONResponse:
    require_role(request, "admin")
    rows = await token_store.list_tokens(get_state(request).db)
    return JSONResponse({"tokens": [token_json(row) for row in rows]})


async def rotate_token(request: Request) -> JSONResponse:
    who = require_role(request, "deployer", "reader")
    await read_json(request, required={})
    state = get_state(request)
    issued = await token_store.rotate_token(state.db, who.token_id)
    state.auth_cache.clear()
    return JSONResponse(issued.as_json())


async def delete_token(request: Request) -> Response:
    who = require_role(request, "deployer", "reader")
    db = get_state(request).db
    token_id = request.path_params["token_id"]
    row = await token_store.get_token(db, token_id)
    if row is None or row["revoked_at"] is not None:
        raise NotFound(f"token {token_id} does not exist or is already revoked")
    if who.role != "admin" and row["user_id"] != who.user_id:
        raise Forbidden("only an admin may revoke another user's token")
    await token_store.revoke_token(db, token_id)
    get_state(request).auth_cache.clear()
    return Response(status_code=204)


ROUTES = [
    Route("/whoami", whoami, methods=["GET"]),
    Route("/tokens", create_token, methods=["POST"]),
    Route("/tokens", list_tokens, methods=["GET"]),
    Route("/tokens/rotate", rotate_token, methods=["POST"]),
    Route("/tokens/{token_id}", delete_token, methods=["DELETE"]),
]

ISSUED_SCHEMA = obj(
    {
        "token": STR,
        "token_id": STR,
        "user_id": STR,
        "name": STR,
        "role": STR,
        "expires_at": NULLABLE_STR,
    }
)
TOKEN_SCHEMA = obj(
    {
        "id": STR,
        "user_id": STR,
        "email": STR,
        "name": STR,
        "role": STR,
        "created_at": STR,
        "expires_at": NULLABLE_STR,
        "last_used_at": NULLABLE_STR,
    }
)
OPENAPI = {
    "/whoami": {
        "get": operation(
            "The caller's identity",
            response=obj({"user_id": STR, "name": STR, "role": STR, "token_id": STR}),
            errors=(401,),
        )
    },
    "/tokens": {
        "post": operation(
            "Create a token (admin); the token is shown only in this response",
            status=201,
            request=obj(
                {"name": STR, "role": {"type": "string", "enum": list(ROLES)}},
                {"email": NULLABLE_STR, "expires_in_secs": {"type": ["integer", "null"]}},
                additionalProperties=False,
            ),
            response=ISSUED_SCHEMA,
            errors=(400, 401, 403),
        ),
        "get": operation(
            "List live tokens (admin; never the tokens themselves)",
            response=obj({"tokens": {"type": "array", "items": TOKEN_SCHEMA}}),
            errors=(401, 403),
        ),
    },
    "/tokens/rotate": {
        "post": operation(
            "Replace the caller's token; the old one stops working at once",
            response=ISSUED_SCHEMA,
            errors=(400, 401, 403),
        )
    },
    "/tokens/{token_id}": {
        "delete": operation(
            "Revoke a token (admin: any; others: their own)",
            status=204,
            params=[param("token_id")],
        )
    },
}

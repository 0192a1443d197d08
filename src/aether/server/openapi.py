"""``GET /openapi.json``: the OpenAPI 3.1 document assembled from every route module.

Route modules describe their operations in ``OPENAPI`` (path → method → operation); the
helpers here keep those descriptions short and consistent (the error envelope, bearer auth).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from aether import __version__
from aether.server.responses import JSONResponse

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
_ERROR_TEXT = {
    400: "Invalid request",
    401: "Missing or invalid bearer token",
    403: "Role or ownership does not allow this",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    503: "Database or storage unavailable",
}


def obj(
    required: dict[str, Any] | None = None, optional: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A JSON object schema from field → schema maps."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {**(required or {}), **(optional or {})},
        **extra,
    }
    if required:
        schema["required"] = list(required)
    return schema


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
NULLABLE_STR = {"type": ["string", "null"]}


def param(
    name: str,
    where: str = "path",
    schema: dict[str, Any] | None = None,
    *,
    required: bool | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path" if required is None else required,
        "schema": schema or STR,
    }


def operation(
    summary: str,
    *,
    status: int = 200,
    response: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (400, 401, 403, 404),
    open_route: bool = False,
    media_type: str = "application/json",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """An operation object with the error envelope on each listed error status."""
    ok: dict[str, Any] = {"description": summary}
    if response is not None:
        ok["content"] = {media_type: {"schema": response}}
    responses: dict[str, Any] = {str(status): ok}
    for code in errors:
        responses[str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": {"application/json": {"schema": ERROR_REF}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
    if params:
        op["parameters"] = params
    if open_route:
        op["security"] = []
    if tags:
        op["tags"] = tags
    return op


def build_document(modules: list[Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for module in modules:
        for path, methods in module.OPENAPI.items():
            paths.setdefault(path, {}).update(methods)
    paths.update(OPENAPI)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Aether control plane", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer_auth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer_auth": []}],
    }


async def openapi_json(request: Request) -> JSONResponse:
    cached = getattr(request.app.state, "openapi", None)
    if cached is None:
        from aether.server.app import route_modules

        cached = request.app.state.openapi = build_document(route_modules())
    return JSONResponse(cached)


ROUTES = [Route("/openapi.json", openapi_json, methods=["GET"])]
OPENAPI = {
    "/openapi.json": {
        "get": operation(
            "This OpenAPI document", response={"type": "object"}, errors=(), open_route=True
        )
    }
}

"""``GET /openapi.json``: the OpenAPI 3.1 document assembled from every route module.

Route modules describe their operations in ``OPENAPI`` (path → method → operation); the
helpers here keep those descriptions short and consistent (the error envelope, bearer auth).
:mod:`aether.server.routes` hands its modules to :func:`document_route`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Literal, get_args, get_origin, is_typeddict

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


_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "number"}


def schema(model: Any, **extra: Any) -> dict[str, Any]:
    """The JSON schema of a TypedDict of :mod:`aether.models`: its required keys are the
    schema's, ``X | None`` is nullable and ``Annotated`` metadata dicts add keywords."""
    hints = typing.get_type_hints(model, include_extras=True)
    required = {key: _field(hints[key]) for key in hints if key in model.__required_keys__}
    optional = {key: _field(hints[key]) for key in hints if key not in model.__required_keys__}
    return obj(required, optional, **extra)


def _field(hint: Any) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.NotRequired:
        return _field(args[0])
    if origin is typing.Annotated:
        keywords = {
            k: v for meta in hint.__metadata__ if isinstance(meta, dict) for k, v in meta.items()
        }
        return {**_field(args[0]), **keywords}
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        (inner,) = [arg for arg in args if arg is not type(None)]
        field = _field(inner)
        if is_typeddict(inner):
            return {"oneOf": [field, {"type": "null"}]}
        return {**field, "type": [field["type"], "null"]}
    if origin is Literal:
        return {"type": _JSON_TYPES[type(args[0])], "enum": list(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _field(args[1])}
    if origin is list:
        return {"type": "array", "items": _field(args[0])}
    if is_typeddict(hint):
        return schema(hint)
    return {"type": _JSON_TYPES[hint]}


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


def build_document(modules: Sequence[ModuleType]) -> dict[str, Any]:
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


def document_route(modules: Sequence[ModuleType]) -> Route:
    """``GET /openapi.json`` describing ``modules`` (built on first request, then kept)."""
    built: list[dict[str, Any]] = []

    async def openapi_json(request: Request) -> JSONResponse:
        if not built:
            built.append(build_document(modules))
        return JSONResponse(built[0])

    return Route("/openapi.json", openapi_json, methods=["GET"])


OPENAPI = {
    "/openapi.json": {
        "get": operation(
            "This OpenAPI document", response={"type": "object"}, errors=(), open_route=True
        )
    }
}

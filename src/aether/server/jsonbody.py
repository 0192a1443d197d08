"""Reading a JSON request body strictly: size-limited, an object, known fields, right types;
and integer query parameters (:func:`int_param`).

Every problem is a :class:`BadRequest` (or :class:`PayloadTooLarge`) whose message names the
field, so clients learn exactly what to fix. Integers must fit the databases' 64-bit columns:
a larger one would otherwise fail deep in a driver as a server error.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from starlette.requests import Request

from aether.errors import BadRequest, PayloadTooLarge

TypeSpec = type | tuple[type, ...]
MAX_INT = 2**63 - 1  # the largest integer PostgreSQL's bigint and SQLite's INTEGER hold
# No field of ours needs more (a config value is at most 32 KiB); a longer string is a
# mistake or an attack, refused before any route or column sees it.
MAX_TEXT_CHARS = 65_536
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused early (Content-Length) or while streaming when above ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(
    request: Request,
    *,
    required: Mapping[str, TypeSpec],
    optional: Mapping[str, TypeSpec] | None = None,
) -> dict[str, Any]:
    """The body as a dict holding only known fields of the declared types.

    ``bool`` never passes for ``int``; ``int`` passes for ``float``. An empty body counts as
    ``{}`` so requests with only optional fields may omit it."""
    optional = optional or {}
    limit = request.app.state.aether.settings.max_body_bytes
    raw = await read_body(request, limit)
    data = _parse(raw)
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        known = ", ".join(sorted({*required, *optional})) or "none"
        raise BadRequest(f"unknown field {unknown[0]!r} (known fields: {known})")
    for name in required:
        if name not in data:
            raise BadRequest(f"missing required field {name!r}")
    for name, value in data.items():
        check_type(name, value, required.get(name) or optional[name])
        check_text(name, value)
    return data


def body_types(model: Any) -> tuple[dict[str, TypeSpec], dict[str, TypeSpec]]:
    """``read_json``'s required and optional field types from a TypedDict of
    :mod:`aether.models` (the request's one description, which OpenAPI shows too)."""
    hints = typing.get_type_hints(model)
    specs = {key: _spec(hint) for key, hint in hints.items()}
    required = {key: spec for key, spec in specs.items() if key in model.__required_keys__}
    optional = {key: spec for key, spec in specs.items() if key not in required}
    return required, optional


def _spec(hint: Any) -> TypeSpec:
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return tuple(t for arg in get_args(hint) for t in _as_tuple(_spec(arg)))
    if origin is Literal:
        return type(get_args(hint)[0])
    if typing.is_typeddict(hint):
        return dict  # its own fields are checked by the route (e.g. models.check_report)
    found: type = origin or hint  # dict[str, str] → dict
    return found


def _as_tuple(spec: TypeSpec) -> tuple[type, ...]:
    return spec if isinstance(spec, tuple) else (spec,)


def check_text(name: str, value: Any) -> None:
    """Strings (also inside objects and arrays) must be storable text: no NUL character, no
    lone surrogate (a JSON ``\\ud800`` escape), which no database column takes, and at most
    :data:`MAX_TEXT_CHARS` long. Object keys are checked for NUL and length only: a route
    that takes names checks them itself."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise BadRequest(f"field {name!r} is longer than {MAX_TEXT_CHARS} characters")
        if "\x00" in value:
            raise BadRequest(f"field {name!r} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"field {name!r} holds a lone surrogate (not Unicode text)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key or len(key) > MAX_TEXT_CHARS:
                raise BadRequest(f"field {name!r} has a key with a NUL character or too long")
            check_text(name, item)
    elif isinstance(value, list):
        for item in value:
            check_text(name, item)


def _parse(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("request body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def int_param(
    raw: str | None, name: str, *, default: int, minimum: int = 0, maximum: int = MAX_INT
) -> int:
    """A query parameter that must be a decimal integer within [minimum, maximum]."""
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    # isdigit() alone takes "²" and other non-ASCII digits, which int() then refuses.
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 20:
        raise BadRequest(f"query parameter {name!r} must be an integer, not {raw[:40]!r}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise BadRequest(f"query parameter {name!r} must be from {minimum} to {maximum}")
    return value


def check_type(name: str, value: Any, spec: TypeSpec) -> None:
    allowed = spec if isinstance(spec, tuple) else (spec,)
    if _matches(value, allowed):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise BadRequest(f"field {name!r} is out of range (at most {MAX_INT} either way)")
        return
    wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in allowed)
    raise BadRequest(f"field {name!r} must be {wanted}, not {_describe(value)}")


def _matches(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, allowed)


def _describe(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)

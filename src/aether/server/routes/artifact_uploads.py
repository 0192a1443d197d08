"""Presigned uploads: ``POST /artifacts/presign`` + ``/complete`` and the multipart flow
(``/artifacts/multipart/init``, ``/presign-part``, ``/complete``, abort, and a parts listing
for resuming). Collected into :mod:`aether.server.routes.artifacts`' ROUTES."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aether.blobs.base import expires_at
from aether.blobs.storage_keys import COMPRESSIONS
from aether.errors import BadRequest
from aether.server.artifacts import metrics, registry
from aether.server.artifacts.access import app_for_upload, check_digest, pending_for_write
from aether.server.auth import principal
from aether.server.jsonbody import read_json
from aether.server.openapi import BOOL, INT, NULLABLE_STR, STR, obj, operation, param
from aether.server.responses import JSONResponse
from aether.server.state import get_state

_ANNOUNCE = {"app_name": str, "digest": str, "size_bytes": int}
_CLAIM_OPTIONAL = {"signature": (str, type(None)), "idempotency_key": (str, type(None))}
MAX_PART_NUMBER = 10_000


def _compression(body: dict[str, Any]) -> str:
    value = body.get("compression") or "zstd"
    if value not in COMPRESSIONS:
        raise BadRequest(f"compression must be one of: {', '.join(COMPRESSIONS)}")
    return value


def _upload(body: dict[str, Any]) -> registry.Upload:
    return registry.Upload(body["digest"], body["size_bytes"], _compression(body))


def _completion(body: dict[str, Any], **multipart: Any) -> registry.Completion:
    return registry.Completion(
        digest=body["digest"],
        size_bytes=body["size_bytes"],
        signature=body.get("signature"),
        idempotency_key=body.get("idempotency_key") or None,
        **multipart,
    )


async def presign(request: Request) -> JSONResponse:
    body = await read_json(request, required=_ANNOUNCE, optional={"compression": str})
    state = get_state(request)
    app, _ = await app_for_upload(request, state, body["app_name"])
    return JSONResponse(await registry.presign(state, principal(request), app, _upload(body)))


async def complete(request: Request) -> JSONResponse:
    body = await read_json(request, required=_ANNOUNCE, optional=_CLAIM_OPTIONAL)
    state = get_state(request)
    app, _ = await app_for_upload(request, state, body["app_name"])
    return JSONResponse(await registry.complete(state, principal(request), app, _completion(body)))


async def multipart_init(request: Request) -> JSONResponse:
    body = await read_json(request, required=_ANNOUNCE, optional={"compression": str})
    state = get_state(request)
    app, _ = await app_for_upload(request, state, body["app_name"])
    return JSONResponse(
        await registry.start_multipart(state, principal(request), app, _upload(body))
    )


def _part_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PART_NUMBER:
        raise BadRequest(f"part_number must be an integer from 1 to {MAX_PART_NUMBER}")
    return value


async def multipart_presign_part(request: Request) -> JSONResponse:
    body = await read_json(request, required={"digest": str, "upload_id": str, "part_number": int})
    state = get_state(request)
    row = await pending_for_write(request, state, body["digest"], body["upload_id"])
    metrics.MULTIPART_PART_PRESIGNS.inc()
    expires = state.blob_settings.presign_expire_secs
    number = _part_number(body["part_number"])
    limit = registry.part_size_limit(state, row)
    url = await state.blobs.presign_part(
        row["storage_key"], body["upload_id"], number, expires_secs=expires, max_size=limit
    )
    return JSONResponse({"url": url, "headers": {}, "expires_at": expires_at(expires)})


def _parts(value: list[Any]) -> tuple[tuple[int, str], ...]:
    parts = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("etag"), str):
            raise BadRequest("each part must be an object {part_number, etag}")
        parts.append((_part_number(item.get("part_number")), item["etag"]))
    return tuple(parts)


async def multipart_complete(request: Request) -> JSONResponse:
    body = await read_json(
        request,
        required={**_ANNOUNCE, "upload_id": str, "parts": list},
        optional=_CLAIM_OPTIONAL,
    )
    state = get_state(request)
    app, _ = await app_for_upload(request, state, body["app_name"])
    completion = _completion(body, upload_id=body["upload_id"], parts=_parts(body["parts"]))
    return JSONResponse(await registry.complete(state, principal(request), app, completion))


def _digest_query(request: Request) -> str:
    digest = request.query_params.get("digest")
    if not digest:
        raise BadRequest("pass the artifact's digest as ?digest=")
    return check_digest(digest)


async def multipart_abort(request: Request) -> Response:
    state = get_state(request)
    upload_id = request.path_params["upload_id"]
    row = await pending_for_write(request, state, _digest_query(request), upload_id)
    await registry.abort_multipart(state, row, request.path_params["upload_id"])
    return Response(status_code=204)


async def multipart_parts(request: Request) -> JSONResponse:
    state = get_state(request)
    upload_id = request.path_params["upload_id"]
    row = await pending_for_write(request, state, _digest_query(request), upload_id)
    parts = await state.blobs.list_parts(row["storage_key"], request.path_params["upload_id"])
    listed = [{"part_number": p.part_number, "etag": p.etag, "size": p.size} for p in parts]
    return JSONResponse({"parts": listed})


async def register_manifest(request: Request) -> JSONResponse:
    body = await read_json(
        request, required={"app_name": str, "manifest": str}, optional=_CLAIM_OPTIONAL
    )
    state = get_state(request)
    app, _ = await app_for_upload(request, state, body["app_name"])
    raw = body["manifest"].encode("utf-8")
    return JSONResponse(
        await registry.register_manifest(state, principal(request), app, raw, body.get("signature"))
    )


ROUTES = [
    Route("/artifacts/manifests", register_manifest, methods=["POST"]),
    Route("/artifacts/presign", presign, methods=["POST"]),
    Route("/artifacts/complete", complete, methods=["POST"]),
    Route("/artifacts/multipart/init", multipart_init, methods=["POST"]),
    Route("/artifacts/multipart/presign-part", multipart_presign_part, methods=["POST"]),
    Route("/artifacts/multipart/complete", multipart_complete, methods=["POST"]),
    Route("/artifacts/multipart/{upload_id}", multipart_abort, methods=["DELETE"]),
    Route("/artifacts/multipart/{upload_id}/parts", multipart_parts, methods=["GET"]),
]

_DIGEST = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ANNOUNCE_SCHEMA = {"app_name": STR, "digest": _DIGEST, "size_bytes": INT}
_COMPRESSION = {"compression": {"type": "string", "enum": list(COMPRESSIONS)}}
_CLAIM_SCHEMA = {"signature": NULLABLE_STR, "idempotency_key": NULLABLE_STR}
STORED_SCHEMA = obj(
    {
        "artifact_id": STR,
        "digest": _DIGEST,
        "duplicate": BOOL,
        "verified": BOOL,
        "storage_key": STR,
        "status": {"type": "string", "enum": ["stored"]},
    }
)
_HEADERS = {"type": "object", "additionalProperties": STR}
_UPLOAD_ERRORS = (400, 401, 403, 409, 503)
_DIGEST_PARAMS = [param("upload_id"), param("digest", "query", _DIGEST, required=True)]

OPENAPI = {
    "/artifacts/manifests": {
        "post": operation(
            "Register a layered artifact: its canonical manifest, once every layer it names"
            " is stored (docs/artifact-format.md); the artifact digest is the manifest's sha256",
            request=obj(
                {"app_name": STR, "manifest": STR},
                {"signature": NULLABLE_STR, "idempotency_key": NULLABLE_STR},
            ),
            response=obj(
                {
                    "artifact_id": STR,
                    "digest": STR,
                    "duplicate": BOOL,
                    "verified": BOOL,
                    "storage_key": STR,
                    "status": STR,
                    "layers": {"type": "array", "items": {"type": "object"}},
                    "sbom": {"type": ["object", "null"]},
                }
            ),
            errors=_UPLOAD_ERRORS,
        )
    },
    "/artifacts/presign": {
        "post": operation(
            "Presign a single-part upload (method NONE when the digest is already stored)",
            request=obj(_ANNOUNCE_SCHEMA, _COMPRESSION),
            response=obj(
                {
                    "method": {"type": "string", "enum": ["PUT", "NONE"]},
                    "upload_url": NULLABLE_STR,
                    "storage_key": STR,
                    "headers": _HEADERS,
                    "expires_at": NULLABLE_STR,
                }
            ),
            errors=_UPLOAD_ERRORS,
        )
    },
    "/artifacts/complete": {
        "post": operation(
            "Verify an uploaded object and mark the artifact stored",
            request=obj(_ANNOUNCE_SCHEMA, _CLAIM_SCHEMA),
            response=STORED_SCHEMA,
            errors=_UPLOAD_ERRORS,
        )
    },
    "/artifacts/multipart/init": {
        "post": operation(
            "Start a multipart upload",
            request=obj(_ANNOUNCE_SCHEMA, _COMPRESSION),
            response=obj(
                {"upload_id": NULLABLE_STR, "storage_key": STR, "part_size_bytes": INT},
                {"duplicate": BOOL},
            ),
            errors=_UPLOAD_ERRORS,
        )
    },
    "/artifacts/multipart/presign-part": {
        "post": operation(
            "Presign the PUT of one part",
            request=obj({"digest": _DIGEST, "upload_id": STR, "part_number": INT}),
            response=obj({"url": STR, "headers": _HEADERS, "expires_at": STR}),
            errors=(400, 401, 403, 404, 503),
        )
    },
    "/artifacts/multipart/complete": {
        "post": operation(
            "Assemble the parts, verify the object and mark the artifact stored",
            request=obj(
                {
                    **_ANNOUNCE_SCHEMA,
                    "upload_id": STR,
                    "parts": {
                        "type": "array",
                        "items": obj({"part_number": INT, "etag": STR}),
                    },
                },
                _CLAIM_SCHEMA,
            ),
            response=STORED_SCHEMA,
            errors=(*_UPLOAD_ERRORS, 404),
        )
    },
    "/artifacts/multipart/{upload_id}": {
        "delete": operation(
            "Abort a multipart upload and drop its pending row",
            status=204,
            params=_DIGEST_PARAMS,
            errors=(400, 401, 403, 404),
        )
    },
    "/artifacts/multipart/{upload_id}/parts": {
        "get": operation(
            "The parts uploaded so far (to resume an interrupted upload)",
            params=_DIGEST_PARAMS,
            response=obj(
                {
                    "parts": {
                        "type": "array",
                        "items": obj({"part_number": INT, "etag": STR, "size": INT}),
                    }
                }
            ),
            errors=(400, 401, 403, 404),
        )
    },
}

"""The local blob store's presigned URLs: ``PUT``/``GET /blobs/{key}``.

Open to callers without a bearer token because each URL carries its own HMAC signature and
expiry (see :mod:`aether.blobs.url_signer`); an expired or altered URL is 403 ``forbidden``. A PUT
streams to a temporary file while hashing and lands under its key only when complete. With
the S3 store these routes answer 404: S3 serves its own presigned URLs.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from aether.blobs.local import LocalBlobStore
from aether.errors import BadRequest, NotFound
from aether.server.openapi import operation, param
from aether.server.state import get_state


def _local_store(request: Request) -> LocalBlobStore:
    store = get_state(request).blobs
    if not isinstance(store, LocalBlobStore):
        raise NotFound("this control plane stores artifacts in S3; /blobs URLs are not served")
    return store


async def put_blob(request: Request) -> Response:
    store = _local_store(request)
    query = dict(request.query_params)
    try:
        etag = await store.receive_put(request.path_params["key"], query, request.stream())
    except ClientDisconnect:
        raise BadRequest("the upload was interrupted; nothing was stored, PUT it again") from None
    return Response(status_code=200, headers={"ETag": etag})


async def get_blob(request: Request) -> Response:
    store = _local_store(request)
    path = store.path_for_get(request.path_params["key"], dict(request.query_params))
    return FileResponse(path, media_type="application/octet-stream")


ROUTES = [
    Route("/blobs/{key:path}", put_blob, methods=["PUT"]),
    Route("/blobs/{key:path}", get_blob, methods=["GET"]),
]

_SIGNED = [
    param("key"),
    param("expires", "query", required=True),
    param("sig", "query", required=True),
]
OPENAPI = {
    "/blobs/{key}": {
        "put": {
            **operation(
                "Upload to a presigned local URL (object or multipart part); answers the ETag",
                params=_SIGNED,
                errors=(400, 403, 404),
                open_route=True,
            ),
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            },
        },
        "get": operation(
            "Download through a presigned local URL",
            params=_SIGNED,
            response={"type": "string", "format": "binary"},
            media_type="application/octet-stream",
            errors=(403, 404),
            open_route=True,
        ),
    }
}

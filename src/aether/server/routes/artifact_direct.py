"""``PUT /artifacts/{digest}/content?app=NAME``: a small object's bytes sent to the API itself,
in one request instead of presign → PUT → complete.

For objects up to ``AETHER_MAX_BODY_BYTES`` (``GET /config``'s ``direct_upload_max_bytes``): a
code-only redeploy's app layer is a few kilobytes, for which three round trips cost more than
the bytes. The body is read whole, hashed and checked against the digest, then stored as a
completed upload is (:func:`aether.server.artifacts.registry.store_direct`: a digest the
store holds already is not written again, the bytes prove possession). Anything larger goes
through presigned URLs, straight to object storage. At most AETHER_MAX_CONCURRENT_UPLOADS of
the uploads the API receives itself run at once.
"""

from __future__ import annotations

import io

from starlette.requests import Request
from starlette.routing import Route

from aether.server.artifacts import registry
from aether.server.artifacts.access import app_for_upload, check_digest, upload_slots
from aether.server.auth import principal, require_role
from aether.server.jsonbody import read_body
from aether.server.openapi import operation, param
from aether.server.responses import JSONResponse
from aether.server.routes.artifact_uploads import STORED_SCHEMA
from aether.server.state import get_state


def direct_upload_limit(request: Request) -> int:
    """The largest object this API takes directly (its JSON body limit)."""
    return int(get_state(request).settings.max_body_bytes)


async def put_content(request: Request) -> JSONResponse:
    require_role(request, "deployer")  # before reading the body
    digest = check_digest(request.path_params["digest"])
    state = get_state(request)
    app, _ = await app_for_upload(request, state, request.query_params.get("app"))
    body = await read_body(request, direct_upload_limit(request))
    signature = request.headers.get("x-aether-signature") or None
    async with upload_slots(request):
        stored = await registry.store_direct(
            state, principal(request), app, digest, io.BytesIO(body), signature
        )
    return JSONResponse(stored)


ROUTES = [Route("/artifacts/{digest}/content", put_content, methods=["PUT"])]
OPENAPI = {
    "/artifacts/{digest}/content": {
        "put": operation(
            "Upload a small object (at most GET /config's direct_upload_max_bytes) in one"
            " request: hashed, checked against the digest and stored like a completed upload",
            params=[
                param("digest"),
                param("app", "query", required=True),
                param("X-Aether-Signature", "header", required=False),
            ],
            response=STORED_SCHEMA,
            errors=(400, 401, 403, 409, 413, 503),
        )
    }
}

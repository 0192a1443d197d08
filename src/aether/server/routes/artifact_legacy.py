"""The deprecated direct upload ``POST /artifacts`` (multipart form ``app_name`` + ``artifact``).

The body is spooled to a temporary file by the form parser (never held whole in memory),
hashed, checked against ``X-Aether-Artifact-Digest`` and handed to the blob store; at most
``AETHER_MAX_CONCURRENT_UPLOADS`` run at once and the rest wait for a slot. Answers carry
``X-Aether-Deprecated: true``: clients should use the presigned flow.
"""

from __future__ import annotations

import time

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.routing import Route

from aether.errors import BadRequest, InvalidDigest, MissingDigest
from aether.models import is_digest
from aether.server.artifacts import metrics, registry
from aether.server.artifacts.access import app_for_upload, upload_slots
from aether.server.auth import principal, require_role
from aether.server.openapi import BOOL, STR, obj, operation, param
from aether.server.responses import JSONResponse
from aether.server.state import get_state


def _digest_header(request: Request) -> str:
    raw = request.headers.get("x-aether-artifact-digest")
    if raw is None or not raw.strip():
        raise MissingDigest("send the artifact's sha256 in the X-Aether-Artifact-Digest header")
    digest = raw.strip().lower()
    if not is_digest(digest):
        raise InvalidDigest("X-Aether-Artifact-Digest must be 64 hex characters (sha256)")
    return digest


async def legacy_upload(request: Request) -> JSONResponse:
    metrics.LEGACY_REQUESTS.inc()
    require_role(request, "deployer")
    digest = _digest_header(request)
    signature = request.headers.get("x-aether-signature") or None
    metrics.UPLOADS_IN_PROGRESS.inc()
    started = time.monotonic()
    try:
        async with upload_slots(request):
            body = await _store(request, digest, signature)
    finally:
        metrics.UPLOADS_IN_PROGRESS.dec()
        metrics.UPLOAD_DURATION.observe(time.monotonic() - started)
    return JSONResponse(body, headers={"X-Aether-Deprecated": "true"})


async def _store(request: Request, digest: str, signature: str | None) -> dict:
    state = get_state(request)
    async with request.form(max_files=1, max_fields=8) as form:
        app_name, artifact = form.get("app_name"), form.get("artifact")
        if not isinstance(app_name, str) or not isinstance(artifact, UploadFile):
            raise BadRequest("send a multipart form with fields app_name and artifact (a file)")
        app, linked = await app_for_upload(request, state, app_name)
        result = await registry.store_direct(
            state, principal(request), app, digest, artifact.file, signature
        )
    return {
        "artifact_url": f"{state.public_url.rstrip('/')}/artifacts/{digest}/download",
        "digest": digest,
        "duplicate": result["duplicate"],
        "app_linked": linked,
        "verified": result["verified"],
    }


ROUTES = [Route("/artifacts", legacy_upload, methods=["POST"])]
OPENAPI = {
    "/artifacts": {
        "post": {
            **operation(
                "Deprecated direct upload (use /artifacts/presign); streamed and verified",
                response=obj(
                    {
                        "artifact_url": STR,
                        "digest": STR,
                        "duplicate": BOOL,
                        "app_linked": BOOL,
                        "verified": BOOL,
                    }
                ),
                params=[
                    param("X-Aether-Artifact-Digest", "header", required=True),
                    param("X-Aether-Signature", "header", required=False),
                ],
                errors=(400, 401, 403, 409, 503),
            ),
            "deprecated": True,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": obj(
                            {"app_name": STR, "artifact": {"type": "string", "format": "binary"}}
                        )
                    }
                },
            },
        }
    }
}

"""Artifact upload: presign → PUT → complete, or the multipart flow above the server's threshold.

The bytes go straight to object storage through presigned URLs; the API only hands out URLs
and records the result. Progress is reported through ``on_progress("upload", done, total)``
and drawn by the CLI. Which flow is used depends on ``GET /config``'s
``multipart_threshold_bytes`` (multipart from that size on).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aether.client.api import ApiClient, put_presigned
from aether.client.transfer import (
    ByteCounter,
    ProgressCallback,
    SliceReader,
    UploadRequest,
    UploadResult,
    complete_body,
)


def server_config(api: ApiClient) -> dict[str, Any]:
    """``GET /config``: thresholds and limits the client must follow."""
    return api.get("/config")


def upload_artifact(
    api: ApiClient,
    request: UploadRequest,
    *,
    config: dict[str, Any],
    resume_root: Path,
    on_progress: ProgressCallback | None = None,
    concurrency: int = 4,
    presigned: dict[str, Any] | None = None,
) -> UploadResult:
    """Upload one artifact with the flow its size calls for; ``presigned`` is the answer of
    a presign already asked for it (see :func:`presign`)."""
    if is_multipart(request.size_bytes, config):
        # only here: its thread pool and resume records cost a small upload's start-up
        from aether.client.multipart import upload_multipart

        return upload_multipart(
            api,
            request,
            part_size=int(config.get("multipart_part_size_bytes") or 8 * 2**20),
            resume_root=resume_root,
            on_progress=on_progress,
            concurrency=concurrency,
        )
    return upload_single(api, request, on_progress=on_progress, presigned=presigned)


def is_multipart(size_bytes: int, config: Mapping[str, Any]) -> bool:
    """Whether an upload of this size takes the multipart flow (``GET /config``'s threshold)."""
    threshold = int(config.get("multipart_threshold_bytes") or 0)
    return bool(threshold) and size_bytes >= threshold


def presign(api: ApiClient, request: UploadRequest) -> dict[str, Any]:
    """``POST /artifacts/presign``: where to PUT the bytes, or ``method: NONE`` when the
    server holds the digest for the app (what ``HEAD /artifacts/{digest}`` would say)."""
    return api.post(
        "/artifacts/presign",
        {
            "app_name": request.app_name,
            "digest": request.digest,
            "size_bytes": request.size_bytes,
            "compression": request.compression,
        },
    )


def is_held(presigned: dict[str, Any]) -> bool:
    return str(presigned.get("method", "PUT")).upper() == "NONE"


def upload_single(
    api: ApiClient,
    request: UploadRequest,
    *,
    on_progress: ProgressCallback | None = None,
    presigned: dict[str, Any] | None = None,
) -> UploadResult:
    """presign (unless ``presigned`` is its answer) → PUT → complete; ``method: NONE`` from
    presign means the bytes are stored."""
    if presigned is None:
        presigned = presign(api, request)
    result = UploadResult(parts_total=1)
    if is_held(presigned):
        result.skipped = True
    else:
        counter = ByteCounter(request.size_bytes, on_progress)
        with SliceReader(request.artifact, 0, request.size_bytes, counter) as body:
            put_presigned(presigned["upload_url"], body, presigned.get("headers") or {})
        result.uploaded_bytes = request.size_bytes
        result.parts_uploaded = 1
    result.artifact = api.post("/artifacts/complete", complete_body(request))
    return result

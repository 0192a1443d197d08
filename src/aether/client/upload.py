"""Artifact upload: presign → PUT → complete, the multipart flow above the server's threshold,
or one direct PUT of a small object.

The bytes go straight to object storage through presigned URLs; the API only hands out URLs
and records the result. An object up to ``GET /config``'s ``direct_upload_max_bytes`` (a
code-only redeploy's app layer) goes to the API itself in one request instead, which hashes
and stores it. Progress is reported through ``on_progress("upload", done, total)`` and drawn
by the CLI. Which flow is used depends on ``GET /config``'s ``direct_upload_max_bytes`` and
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
from aether.errors import IOFailure


def server_config(api: ApiClient) -> dict[str, Any]:
    """``GET /config``: thresholds and limits the client must follow."""
    return api.get("/config")


# What the first request of a small upload gave (:func:`open_upload`): the whole upload, or
# the presign's answer for the PUT and the complete to follow.
Opened = UploadResult | dict[str, Any]
# What a direct upload may be: the server stores it under its archive name, .tar.zst or .tar.gz.
DIRECT_COMPRESSIONS = frozenset({"zstd", "gzip"})


def upload_artifact(
    api: ApiClient,
    request: UploadRequest,
    *,
    config: dict[str, Any],
    resume_root: Path,
    on_progress: ProgressCallback | None = None,
    concurrency: int = 4,
    opened: Opened | None = None,
) -> UploadResult:
    """Upload one artifact with the flow its size calls for; ``opened`` is what
    :func:`open_upload` already did for it."""
    if isinstance(opened, UploadResult):
        return opened
    if opened is None and is_direct(request, config):
        return upload_direct(api, request, on_progress=on_progress)
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
    return upload_single(api, request, on_progress=on_progress, presigned=opened)


def open_upload(api: ApiClient, request: UploadRequest, config: Mapping[str, Any]) -> Opened:
    """The first request of a single-part upload, which also says whether the server holds
    the bytes for the app (as ``HEAD /artifacts/{digest}`` would): the whole upload where
    the server takes it directly, else the presign."""
    if is_direct(request, config):
        return upload_direct(api, request)
    return presign(api, request)


def opened_held(opened: Opened) -> bool:
    """Whether the server said it holds the bytes already (nothing was sent)."""
    return opened.skipped if isinstance(opened, UploadResult) else is_held(opened)


def is_direct(request: UploadRequest, config: Mapping[str, Any]) -> bool:
    """Small enough for ``PUT /artifacts/{digest}/content`` (``GET /config``'s
    ``direct_upload_max_bytes``; a server without it takes none), and below the size the
    server wants multipart for."""
    limit = int(config.get("direct_upload_max_bytes") or 0)
    small = request.size_bytes <= limit and not is_multipart(request.size_bytes, config)
    return small and request.compression in DIRECT_COMPRESSIONS


def upload_direct(
    api: ApiClient, request: UploadRequest, *, on_progress: ProgressCallback | None = None
) -> UploadResult:
    """The bytes to the API itself, hashed and stored there in one request (a small object:
    its three round trips would cost more than the bytes)."""
    try:
        data = request.artifact.read_bytes()
    except OSError as exc:
        raise IOFailure(f"cannot read {request.artifact}: {exc.strerror or exc}") from exc
    if len(data) != request.size_bytes:
        raise IOFailure(f"{request.artifact} changed while it was being uploaded")
    headers = {"Content-Type": "application/octet-stream"}
    if request.signature_hex:
        headers["X-Aether-Signature"] = request.signature_hex
    path = f"/artifacts/{request.digest}/content?app={request.app_name}"
    stored = api.put_bytes(path, data, headers)
    result = UploadResult(parts_total=1, artifact=stored, skipped=bool(stored.get("duplicate")))
    if not result.skipped:
        result.uploaded_bytes, result.parts_uploaded = len(data), 1
        if on_progress is not None:
            on_progress("upload", len(data), len(data))
    return result


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

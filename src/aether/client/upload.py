"""Artifact upload: presign → PUT → complete, or the multipart flow above the server's threshold.

The bytes go straight to object storage through presigned URLs; the API only hands out URLs
and records the result. Progress is reported through ``on_progress("upload", done, total)``
and drawn by the CLI. Which flow is used depends on ``GET /config``'s
``multipart_threshold_bytes`` (multipart from that size on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aether.client.api import ApiClient, put_presigned
from aether.errors import IOFailure

ProgressCallback = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class UploadRequest:
    """What to upload, for which app."""

    artifact: Path
    app_name: str
    digest: str
    size_bytes: int
    compression: str
    signature_hex: str | None = None


@dataclass
class UploadResult:
    """What happened: bytes actually sent, whether parts were used, the server's artifact."""

    uploaded_bytes: int = 0
    skipped: bool = False
    multipart: bool = False
    parts_total: int = 0
    parts_uploaded: int = 0
    resumed: bool = False
    artifact: dict[str, Any] = field(default_factory=dict)


class ByteCounter:
    """Thread-safe running total of bytes sent, reported to the progress callback."""

    def __init__(self, total: int, on_progress: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self._on_progress = on_progress
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            if self._on_progress is not None:
                self._on_progress("upload", self.done, self.total)


class SliceReader:
    """A file range as a sized, readable body, sent with a Content-Length (no chunking)."""

    def __init__(self, path: Path, offset: int, length: int, counter: ByteCounter) -> None:
        try:
            self._handle = path.open("rb")
            self._handle.seek(offset)
        except OSError as exc:
            raise IOFailure(f"cannot read {path}: {exc.strerror}") from exc
        self._remaining = length
        self._length = length
        self._counter = counter
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        wanted = self._remaining if size is None or size < 0 else min(size, self._remaining)
        chunk = self._handle.read(wanted)
        self._remaining -= len(chunk)
        self.sent += len(chunk)
        self._counter.add(len(chunk))
        return chunk

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SliceReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
) -> UploadResult:
    """Upload one artifact with the flow its size calls for."""
    threshold = int(config.get("multipart_threshold_bytes") or 0)
    if threshold and request.size_bytes >= threshold:
        from aether.client.multipart import upload_multipart

        return upload_multipart(
            api,
            request,
            part_size=int(config.get("multipart_part_size_bytes") or 8 * 2**20),
            resume_root=resume_root,
            on_progress=on_progress,
            concurrency=concurrency,
        )
    return upload_single(api, request, on_progress=on_progress)


def upload_single(
    api: ApiClient, request: UploadRequest, *, on_progress: ProgressCallback | None = None
) -> UploadResult:
    """presign → PUT → complete; ``method: NONE`` from presign means the bytes are stored."""
    presigned = api.post(
        "/artifacts/presign",
        {
            "app_name": request.app_name,
            "digest": request.digest,
            "size_bytes": request.size_bytes,
            "compression": request.compression,
        },
    )
    result = UploadResult(parts_total=1)
    if str(presigned.get("method", "PUT")).upper() == "NONE":
        result.skipped = True
    else:
        counter = ByteCounter(request.size_bytes, on_progress)
        with SliceReader(request.artifact, 0, request.size_bytes, counter) as body:
            put_presigned(presigned["upload_url"], body, presigned.get("headers") or {})
        result.uploaded_bytes = request.size_bytes
        result.parts_uploaded = 1
    result.artifact = api.post("/artifacts/complete", complete_body(request))
    return result


def complete_body(request: UploadRequest, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app_name": request.app_name,
        "digest": request.digest,
        "size_bytes": request.size_bytes,
        **extra,
    }
    if request.signature_hex:
        body["signature"] = request.signature_hex
    return body

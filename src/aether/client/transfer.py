"""What the upload flows share: the request, the result, progress counting, a file slice as
a request body and the complete call's body. Used by :mod:`aether.client.upload` (presign →
PUT → complete) and :mod:`aether.client.multipart` (parts, resumable)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from aether.errors import IOFailure

ProgressCallback = Callable[[str, int, int | None], None]


class UploadRequest(NamedTuple):
    """What to upload, for which app."""

    artifact: Path
    app_name: str
    digest: str
    size_bytes: int
    compression: str
    signature_hex: str | None = None


@dataclass(eq=False, repr=False)
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

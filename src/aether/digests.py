"""sha256 of files, of open streams and of bytes as they are written: an artifact's identity.

The digest of an artifact (or a layer) is the sha256 of the file's bytes. The packer computes
it while writing (``HashingWriter``), ``aether verify`` and the worker recompute it from disk,
the blob store and the server from what they received (``sha256_file``, ``sha256_stream``).
It sits below ``pack`` and ``blobs``, which may not import each other, so both use this one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from aether.errors import IOFailure

CHUNK = 1024 * 1024


def sha256_stream(source: BinaryIO) -> tuple[str, int]:
    """(hex sha256, byte count) of what ``source`` yields from where it stands to its end."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    size = 0
    while count := source.readinto(buffer):  # type: ignore[attr-defined]
        digest.update(view[:count])
        size += count
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, streamed in 1 MiB chunks; IOFailure when unreadable."""
    try:
        with open(path, "rb", buffering=0) as handle:
            return sha256_stream(handle)[0]
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror or exc}") from exc


class HashingWriter:
    """Writes to a binary file and keeps the sha256 and length of everything written."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._sha256.update(data)
            self._handle.write(data)
            self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()

"""sha256 of files and of byte streams as they are written.

The artifact digest is the sha256 of the artifact file's bytes; it is computed while the
compressed stream is written (``HashingWriter``) and recomputed from disk by ``verify``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from aether.errors import IOFailure

CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                digest.update(view[:count])
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def is_hex_digest(value: str) -> bool:
    """True for 64 lowercase hex characters."""
    return len(value) == 64 and all(char in "0123456789abcdef" for char in value)


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

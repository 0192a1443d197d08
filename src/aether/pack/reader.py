"""Read an artifact back: detect its compression and stream the uncompressed tar.

Used by ``verify`` and ``safe_extract``. The stream can cap the number of uncompressed bytes
(a decompression bomb stops at the cap instead of filling the disk or memory) and hashes what
passes through, so ``tar_sha256`` is checked in the same pass.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import zstandard

from aether.errors import IntegrityError, IOFailure

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_DRAIN = 1024 * 1024
# What a broken or hostile stream raises while being decompressed or parsed.
STREAM_ERRORS = (tarfile.TarError, zstandard.ZstdError, zlib.error, EOFError, gzip.BadGzipFile)


class Readable(Protocol):
    """A file, or a decompressor reading one."""

    def read(self, size: int = -1, /) -> bytes: ...


class TarStream:
    """A read-only view of the uncompressed tar: hashes and counts bytes, enforces a cap."""

    def __init__(self, source: Readable, limit: int | None) -> None:
        self._source = source
        self._limit = limit
        self._sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size if size is not None and size >= 0 else _DRAIN)
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise IntegrityError(
                f"the archive expands beyond {self._limit} bytes; refusing it as a "
                "decompression bomb"
            )
        self._sha256.update(data)
        return data

    def drain(self) -> None:
        """Read to the end so the hash covers the whole stream."""
        while self.read(_DRAIN):
            pass

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def detect_compression(head: bytes) -> str:
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    return "none"


@contextlib.contextmanager
def open_tar_stream(archive: Path, *, limit: int | None = None) -> Iterator[TarStream]:
    """The archive's uncompressed tar bytes (zstd, gzip or plain tar, by magic number)."""
    try:
        raw = open(archive, "rb")  # noqa: SIM115 - closed by the ExitStack below
    except OSError as exc:
        raise IOFailure(f"cannot read {archive}: {exc.strerror or exc}") from exc
    with contextlib.ExitStack() as stack:
        stack.enter_context(raw)
        kind = detect_compression(raw.read(4))
        raw.seek(0)
        source: Readable
        if kind == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            source = stack.enter_context(reader)
        elif kind == "gzip":
            source = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        else:
            source = raw
        yield TarStream(source, limit)


def open_tar(stream: TarStream) -> tarfile.TarFile:
    """tarfile in streaming mode over ``stream`` (members are read once, in order)."""
    try:
        opened: tarfile.TarFile = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]
        return opened
    except STREAM_ERRORS as exc:
        raise IntegrityError(f"not a readable tar archive: {exc}") from exc

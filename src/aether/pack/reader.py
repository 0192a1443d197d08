"""Read an artifact back: detect its compression and stream the uncompressed tar.

Used by ``verify``, ``safe_extract`` and the worker's layer scanner. The stream can cap the
number of uncompressed bytes (a decompression bomb stops at the cap instead of filling the
disk or memory; :func:`expansion_cap` derives the cap from :class:`ExpansionLimits` and the
compressed size) and, when asked (``verify`` of an archive whose manifest records
``tar_sha256``), hashes what passes through, so that is checked in the same pass.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zstandard

from aether.errors import IntegrityError, IOFailure
from aether.pack import tarcodec
from aether.settings import ExpansionLimits

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_DRAIN = 1024 * 1024
# What a broken or hostile stream raises while being decompressed or parsed.
STREAM_ERRORS = (tarfile.TarError, zstandard.ZstdError, zlib.error, EOFError, gzip.BadGzipFile)


class Readable(Protocol):
    """A file, or a decompressor reading one."""

    def read(self, size: int = -1, /) -> bytes: ...


class ArchiveBomb(IntegrityError):
    """An archive that expands beyond the extraction limits (exit 20); nothing is kept."""

    code = "archive_bomb"


@dataclass(frozen=True)
class Cap:
    """The most uncompressed bytes a stream may yield, and why (for the refusal)."""

    bytes: int
    reason: str


def expansion_cap(limits: ExpansionLimits, compressed_size: int) -> Cap:
    """The tighter of the size limit and the ratio limit for an archive of this size."""
    cap = Cap(
        limits.max_bytes,
        f"it expands beyond {limits.max_bytes:,} bytes, the limit (AETHER_MAX_EXPANDED_BYTES)",
    )
    if limits.max_ratio:
        by_ratio = max(limits.max_ratio * compressed_size, limits.RATIO_FLOOR_BYTES)
        if by_ratio < cap.bytes:
            cap = Cap(
                by_ratio,
                f"it expands more than {limits.max_ratio} times its compressed size of"
                f" {compressed_size:,} bytes (AETHER_MAX_EXPANSION_RATIO)",
            )
    return cap


class TarStream:
    """A read-only view of the uncompressed tar: counts bytes, enforces a cap, and with
    ``hashed`` hashes them (sha256)."""

    def __init__(self, source: Readable, cap: Cap | None, *, hashed: bool = False) -> None:
        self._source = source
        self.cap = cap
        self._sha256 = hashlib.sha256() if hashed else None
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size if size is not None and size >= 0 else _DRAIN)
        self.size += len(data)
        if self.cap is not None and self.size > self.cap.bytes:
            raise ArchiveBomb(
                f"refusing the archive as a decompression bomb: {self.cap.reason}; "
                "it was stopped there and nothing was kept"
            )
        if self._sha256 is not None:
            self._sha256.update(data)
        return data

    def drain(self) -> None:
        """Read to the end so the hash covers the whole stream."""
        while self.read(_DRAIN):
            pass

    def hexdigest(self) -> str:
        if self._sha256 is None:
            raise ValueError("the stream was opened without hashed=True")
        return self._sha256.hexdigest()


def detect_compression(head: bytes) -> str:
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    return "none"


@contextlib.contextmanager
def open_tar_stream(
    archive: Path, *, limits: ExpansionLimits | None = None, hashed: bool = False
) -> Iterator[TarStream]:
    """The archive's uncompressed tar bytes (zstd, gzip or plain tar, by magic number),
    capped by ``limits`` when given, hashed with ``hashed``."""
    try:
        raw = open(archive, "rb")  # noqa: SIM115 - closed by the ExitStack below
    except OSError as exc:
        raise IOFailure(f"cannot read {archive}: {exc.strerror or exc}") from exc
    with contextlib.ExitStack() as stack:
        stack.enter_context(raw)
        kind = detect_compression(raw.read(4))
        compressed_size = raw.seek(0, 2)
        raw.seek(0)
        source: Readable
        if kind == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            source = stack.enter_context(reader)
        elif kind == "gzip":
            source = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        else:
            source = raw
        cap = expansion_cap(limits, compressed_size) if limits is not None else None
        yield TarStream(source, cap, hashed=hashed)


# GNU long names and pax records are read whole into memory by tarfile: bounded like the
# codec's own reader, far above any real path or attribute set.
MAX_METADATA_BYTES = tarcodec.MAX_METADATA_BYTES
_METADATA_TYPES = (
    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)  # fmt: skip


class BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses a metadata record too large to hold in memory."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _METADATA_TYPES and self.size > MAX_METADATA_BYTES:
            # Not a HeaderError: tarfile would take that for the end of the archive.
            raise ArchiveBomb(
                f"refusing the archive: a metadata record of {self.size:,} bytes"
                f" (more than {MAX_METADATA_BYTES:,}); nothing was kept"
            )
        member = super()._proc_member(archive)  # type: ignore[misc]
        assert isinstance(member, tarfile.TarInfo)
        return member


def open_tar(stream: TarStream) -> tarfile.TarFile:
    """tarfile in streaming mode over ``stream`` (members are read once, in order)."""
    try:
        opened: tarfile.TarFile = tarfile.open(  # type: ignore[call-overload]
            fileobj=stream, mode="r|", tarinfo=BoundedTarInfo
        )
        return opened
    except STREAM_ERRORS as exc:
        raise IntegrityError(f"not a readable tar archive: {exc}") from exc

"""Write the sorted entries of a tree as a tar stream: read, hash, add headers, hand on.

This runs on the calling thread; the sink compresses and hashes on its own threads (zstd's
workers, sha256), so reading and hashing files overlaps with compression. Reading itself stays
on one thread: per file it is four short system calls between bits of Python, and a pool of
reader threads measured slower (each call hands the GIL over twice). Memory stays bounded: a
batch holds at most ``BATCH_BYTES`` of file data, and files above ``INLINE_MAX`` (or beyond a
full batch) are streamed in chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from stat import S_ISREG
from typing import NamedTuple, Protocol

import blake3

from aether.errors import IOFailure
from aether.pack import tarwriter
from aether.pack.walk import DIRECTORY, SYMLINK, Entry

BATCH_ENTRIES = 128
BATCH_BYTES = 4 * 1024 * 1024
INLINE_MAX = 1024 * 1024
STREAM_CHUNK = 1024 * 1024
BLOCK = tarwriter.BLOCK
ZEROS = bytes(BLOCK)
EXEC_MODE = tarwriter.EXEC_MODE
FILE_MODE = tarwriter.FILE_MODE
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FileRecord(NamedTuple):
    """A regular file as the manifest lists it."""

    path: str
    size: int
    mode: int
    blake3: str


@dataclass
class TreeContents:
    """What was written: the manifest's lists, in archive order."""

    files: list[FileRecord] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    symlinks: list[tuple[str, str]] = field(default_factory=list)
    bytes_in: int = 0
    tar_bytes: int = 0


@dataclass(slots=True)
class _Segment:
    blob: bytes
    records: list[FileRecord]


class Sink(Protocol):
    """What the packer writes to (``CompressedSink`` or anything with ``write``)."""

    def write(self, data: bytes) -> None: ...


def write_tree(
    entries: list[Entry],
    sink: Sink,
    mtime: int,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> TreeContents:
    """Write every entry and the end-of-archive marker to ``sink``.

    ``on_progress(tar_bytes_written, None)`` is called after each batch.
    """
    mtime_field = tarwriter.mtime_field(mtime)
    contents = TreeContents()
    for batch, results in _batches(entries, mtime_field):
        for item in results:
            if isinstance(item, _Segment):
                sink.write(item.blob)
                contents.tar_bytes += len(item.blob)
                contents.files.extend(item.records)
            else:
                record = _stream_file(item, sink, mtime_field, contents)
                contents.files.append(record)
        _note_non_files(batch, contents)
        if on_progress is not None:
            on_progress(contents.tar_bytes, None)
    contents.bytes_in = sum(record.size for record in contents.files)
    tail = tarwriter.end_of_archive(contents.tar_bytes)
    sink.write(tail)
    contents.tar_bytes += len(tail)
    return contents


def _note_non_files(batch: list[Entry], contents: TreeContents) -> None:
    for entry in batch:
        if entry.kind == DIRECTORY:
            contents.directories.append(entry.path)
        elif entry.kind == SYMLINK:
            contents.symlinks.append((entry.path, entry.target or ""))


def _batches(
    entries: list[Entry], mtime: bytes
) -> Iterator[tuple[list[Entry], list[_Segment | Entry]]]:
    for start in range(0, len(entries), BATCH_ENTRIES):
        batch = entries[start : start + BATCH_ENTRIES]
        yield batch, _read_batch(batch, mtime)


def _read_batch(batch: list[Entry], mtime: bytes) -> list[_Segment | Entry]:
    """Headers and data of a run of entries; files left for the writer appear as Entries."""
    results: list[_Segment | Entry] = []
    parts: list[bytes] = []
    records: list[FileRecord] = []
    budget = BATCH_BYTES
    for entry in batch:
        kind = entry.kind
        if kind == DIRECTORY:
            parts.append(tarwriter.directory_header(entry.raw, mtime))
        elif kind == SYMLINK:
            target = (entry.target or "").encode("utf-8", "surrogateescape")
            parts.append(tarwriter.symlink_header(entry.raw, target, mtime))
        elif budget > 0 and (size := _read_small(entry, mtime, parts, records)) >= 0:
            budget -= size
        else:
            # Too big to hold, or the batch is full: the writing thread streams it.
            if parts:
                results.append(_Segment(b"".join(parts), records))
                parts, records = [], []
            results.append(entry)
    if parts:
        results.append(_Segment(b"".join(parts), records))
    return results


def _open(entry: Entry) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(entry.source, _OPEN_FLAGS)
    except OSError as exc:
        raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    stat = os.fstat(fd)
    if not S_ISREG(stat.st_mode):
        os.close(fd)
        raise IOFailure(f"{entry.path} stopped being a regular file while packing; pack again")
    return fd, stat


def _read_small(entry: Entry, mtime: bytes, parts: list[bytes], records: list[FileRecord]) -> int:
    """Append a small file's header, data and padding; -1 (and nothing) when it is large.

    The hot loop of a pack (once per file): kept flat on purpose.
    """
    fd, stat = _open(entry)
    try:
        size = stat.st_size
        if size > INLINE_MAX:
            return -1
        data = os.read(fd, size) if size else b""
        if len(data) != size:
            data += _read_exact(fd, size - len(data), entry)
    except OSError as exc:
        raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    mode = EXEC_MODE if stat.st_mode & 0o111 else FILE_MODE
    parts.append(tarwriter.file_header(entry.raw, mode, size, mtime))
    parts.append(data)
    if size % BLOCK:
        parts.append(ZEROS[: BLOCK - size % BLOCK])
    records.append(FileRecord(entry.path, size, mode, blake3.blake3(data).hexdigest()))
    return size


def _read_exact(fd: int, size: int, entry: Entry) -> bytes:
    try:
        data = os.read(fd, size) if size else b""
        while len(data) < size:
            more = os.read(fd, size - len(data))
            if not more:
                raise IOFailure(f"{entry.path} shrank while packing; pack again")
            data += more
    except OSError as exc:
        raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    return data


def _stream_file(entry: Entry, sink: Sink, mtime: bytes, contents: TreeContents) -> FileRecord:
    fd, stat = _open(entry)
    try:
        size = stat.st_size
        mode = tarwriter.normalised_mode(stat.st_mode)
        header = tarwriter.file_header(entry.raw, mode, size, mtime)
        sink.write(header)
        hasher = blake3.blake3()
        remaining = size
        while remaining:
            chunk = _read_exact(fd, min(STREAM_CHUNK, remaining), entry)
            hasher.update(chunk)
            sink.write(chunk)
            remaining -= len(chunk)
        pad = tarwriter.padding(size)
        sink.write(pad)
    finally:
        os.close(fd)
    contents.tar_bytes += len(header) + size + len(pad)
    return FileRecord(entry.path, size, mode, hasher.hexdigest())

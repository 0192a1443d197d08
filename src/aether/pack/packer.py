"""Write the sorted entries of a tree as a tar stream: read, hash, add headers, hand on.

This runs on the calling thread, or, for big trees, in worker processes that each write a
share of the members (``parallel``); the sink compresses and hashes on its own threads. Per
file the work is four short system calls between bits of Python, so threads would not help (a
pool of reader threads measured slower: each call hands the GIL over twice). Memory stays
bounded: a run of entries holds at most ``BATCH_BYTES`` of file data, and files above
``INLINE_MAX`` are streamed in chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from stat import S_ISREG
from typing import NamedTuple, Protocol

import blake3

from aether.errors import IOFailure
from aether.pack import tarwriter
from aether.pack.walk import DIRECTORY, FILE, Entry

BATCH_ENTRIES = 128
BATCH_BYTES = 4 * 1024 * 1024
INLINE_MAX = 1024 * 1024
STREAM_CHUNK = 1024 * 1024
BLOCK = tarwriter.BLOCK
EXEC_MODE = tarwriter.EXEC_MODE
FILE_MODE = tarwriter.FILE_MODE
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FileRecord(NamedTuple):
    """A regular file as the manifest lists it."""

    path: str
    size: int
    mode: int
    blake3: str


# A FileRecord from a tuple, without the Python-level __new__ of a named tuple: once per file.
new_file_record = partial(tuple.__new__, FileRecord)


@dataclass
class TreeContents:
    """What was written: the manifest's lists, in archive order."""

    files: list[FileRecord] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    symlinks: list[tuple[str, str]] = field(default_factory=list)
    bytes_in: int = 0
    tar_bytes: int = 0


class Sink(Protocol):
    """What the packer writes to (``CompressedSink`` or anything with ``write``)."""

    def write(self, data: bytes) -> None: ...


def write_tree(
    entries: Iterable[Entry],
    sink: Sink,
    mtime: int,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> TreeContents:
    """Write every entry and the end-of-archive marker to ``sink``.

    ``on_progress(tar_bytes_written, None)`` is called after each batch.
    """
    contents = TreeContents()
    write_members(entries, sink, tarwriter.mtime_field(mtime), contents, on_progress=on_progress)
    finish_tree(sink, contents)
    return contents


def write_members(
    entries: Iterable[Entry],
    sink: Sink,
    mtime_field: bytes,
    contents: TreeContents,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> None:
    """Write the members for ``entries`` (no end marker), adding them to ``contents``.

    The members of consecutive runs of entries concatenate to the members of the whole run,
    so parts of a tree can be written separately and joined in order.
    """
    iterator = iter(entries)
    more = True
    while more:
        parts, large, more = _read_run(iterator, mtime_field, contents)
        if parts:
            blob = b"".join(parts)
            sink.write(blob)
            contents.tar_bytes += len(blob)
        if large is not None:
            contents.files.append(_stream_file(large, sink, mtime_field, contents))
        if on_progress is not None:
            on_progress(contents.tar_bytes, None)


def finish_tree(sink: Sink, contents: TreeContents) -> None:
    """Write the end-of-archive marker and total the file sizes."""
    contents.bytes_in = sum(record.size for record in contents.files)
    tail = tarwriter.end_of_archive(contents.tar_bytes)
    sink.write(tail)
    contents.tar_bytes += len(tail)


def _read_run(
    entries: Iterator[Entry], mtime: bytes, contents: TreeContents
) -> tuple[list[bytes], Entry | None, bool]:
    """Headers and data of the next run of entries, listed in ``contents`` as it goes.

    Returns the parts, a file too large to hold (the caller streams it next) and whether
    entries may be left. A run ends after ``BATCH_ENTRIES`` entries or ``BATCH_BYTES`` of
    data. The hot loop of a pack (once per member): kept flat on purpose.
    """
    parts: list[bytes] = []
    files = contents.files
    file_header = tarwriter.file_header
    paddings = tarwriter.PADDINGS
    budget = BATCH_BYTES
    count = 0
    for entry in entries:
        count += 1
        kind = entry.kind
        if kind == FILE:
            try:
                fd = os.open(entry.source, _OPEN_FLAGS)
            except OSError as exc:
                raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
            try:
                stat = os.fstat(fd)
                size = stat.st_size
                if not S_ISREG(stat.st_mode):
                    raise IOFailure(
                        f"{entry.path} stopped being a regular file while packing; pack again"
                    )
                if size > INLINE_MAX:
                    return parts, entry, True
                data = os.read(fd, size)
                if len(data) != size:
                    data += _read_exact(fd, size - len(data), entry)
            except OSError as exc:
                raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
            finally:
                os.close(fd)
            mode = EXEC_MODE if stat.st_mode & 0o111 else FILE_MODE
            parts += (file_header(entry.raw, mode, size, mtime), data, paddings[size % BLOCK])
            files.append(new_file_record((entry.path, size, mode, blake3.blake3(data).hexdigest())))
            budget -= size
        elif kind == DIRECTORY:
            parts.append(tarwriter.directory_header(entry.raw, mtime))
            contents.directories.append(entry.path)
        else:
            target = entry.target or ""
            link = target.encode("utf-8", "surrogateescape")
            parts.append(tarwriter.symlink_header(entry.raw, link, mtime))
            contents.symlinks.append((entry.path, target))
        if count == BATCH_ENTRIES or budget <= 0:
            return parts, None, True
    return parts, None, False


def _open(entry: Entry) -> int:
    try:
        return os.open(entry.source, _OPEN_FLAGS)
    except OSError as exc:
        raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc


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
    """Write a large file's member in chunks, straight to the sink."""
    fd = _open(entry)
    try:
        stat = os.fstat(fd)
        if not S_ISREG(stat.st_mode):
            raise IOFailure(f"{entry.path} stopped being a regular file while packing; pack again")
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

"""Write the sorted entries of a tree as a tar stream: read, hash, add headers, hand on.

This runs on the calling thread, or, for big trees, on reader threads (``threaded``) or in
worker processes (``parallel``) that each write a share of the members; the sink compresses
and hashes on its own threads. The entries go by in batches to ``batchread``, which reads and
hashes them (natively when the extension is built). Memory stays bounded: a batch holds at
most ``BATCH_BYTES`` of file data, and files above ``INLINE_MAX`` are streamed in chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from operator import itemgetter
from stat import S_ISREG
from typing import NamedTuple, Protocol

import blake3

from aether.errors import IOFailure
from aether.pack import batchread, tarcodec
from aether.pack.walk import Entry

BATCH_ENTRIES = 128
BATCH_BYTES = 4 * 1024 * 1024
INLINE_MAX = 1024 * 1024
STREAM_CHUNK = 1024 * 1024


class FileRecord(NamedTuple):
    """A regular file as the manifest lists it."""

    path: str
    size: int
    mode: int
    blake3: str


# A FileRecord from a tuple, without the Python-level __new__ of a named tuple: once per file.
new_file_record = partial(tuple.__new__, FileRecord)
_SIZE = itemgetter(1)  # FileRecord.size, without a generator's frame per file


@dataclass
class TreeContents:
    """What was written: the manifest's lists, in archive order."""

    files: list[FileRecord] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    symlinks: list[tuple[str, str]] = field(default_factory=list)
    bytes_in: int = 0
    tar_bytes: int = 0
    # The manifest's lines for ``files``, rendered while the compressor finishes
    # (``manifest.render_ahead``); not part of what was written.
    files_lines: bytes | None = field(default=None, compare=False, repr=False)


class Sink(Protocol):
    """What the packer writes to (``CompressedSink`` or anything with ``write``)."""

    def write(self, data: bytes | memoryview) -> None: ...


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
    write_members(entries, sink, tarcodec.mtime_field(mtime), contents, on_progress=on_progress)
    finish_tree(sink, contents)
    return contents


def read_batch_parts(
    batch: Sequence[Entry], mtime_field: bytes, contents: TreeContents
) -> Iterator[batchread.Members | Entry]:
    """``batch``'s members as the native reader frames them, their records added to ``contents``.

    A file too large to hold in memory comes out as its ``Entry``: the caller streams it and
    adds its record before asking for the next part, so records stay in archive order.
    """
    read = batchread.read_batch
    index = 0
    while index < len(batch):
        blob, index, status = read(
            batch,
            index,
            mtime_field,
            BATCH_BYTES,
            INLINE_MAX,
            contents.files,
            contents.directories,
            contents.symlinks,
            new_file_record,
        )
        if blob:
            yield blob
        if status == batchread.LARGE:
            yield batch[index]
            index += 1
        elif status == batchread.CAREFUL:
            read = batchread.read_batch_python  # it names what went wrong, or gets past it


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
    while batch := list(islice(iterator, BATCH_ENTRIES)):
        for part in read_batch_parts(batch, mtime_field, contents):
            if isinstance(part, Entry):
                contents.files.append(stream_file(part, sink, mtime_field, contents))
            else:
                sink.write(part)
                contents.tar_bytes += len(part)
        if on_progress is not None:
            on_progress(contents.tar_bytes, None)


def finish_tree(sink: Sink, contents: TreeContents) -> None:
    """Write the end-of-archive marker and total the file sizes."""
    contents.bytes_in = sum(map(_SIZE, contents.files))
    tail = tarcodec.end_of_archive(contents.tar_bytes)
    sink.write(tail)
    contents.tar_bytes += len(tail)


def _open(entry: Entry) -> int:
    try:
        return os.open(entry.source, batchread.OPEN_FLAGS)
    except OSError as exc:
        raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc


def stream_file(entry: Entry, sink: Sink, mtime: bytes, contents: TreeContents) -> FileRecord:
    """Write a large file's member in chunks, straight to the sink."""
    fd = _open(entry)
    try:
        stat = os.fstat(fd)
        if not S_ISREG(stat.st_mode):
            raise IOFailure(f"{entry.path} stopped being a regular file while packing; pack again")
        size = stat.st_size
        mode = tarcodec.normalised_mode(stat.st_mode)
        header = tarcodec.file_header(entry.raw, mode, size, mtime)
        sink.write(header)
        hasher = blake3.blake3()
        remaining = size
        while remaining:
            chunk = batchread.read_exact(fd, min(STREAM_CHUNK, remaining), entry)
            hasher.update(chunk)
            sink.write(chunk)
            remaining -= len(chunk)
        pad = tarcodec.padding(size)
        sink.write(pad)
    finally:
        os.close(fd)
    contents.tar_bytes += len(header) + size + len(pad)
    return FileRecord(entry.path, size, mode, hasher.hexdigest())

"""Write a big tree's members on reader threads, merged back in archive order.

With the native reader a batch costs the GIL only to be set up and to hash and record its
files: opening, reading and framing them runs without it (``_batchread``). So threads read
in parallel, in one process: this thread walks the tree in archive order and cuts the
entries into batches, the readers turn each batch into tar bytes and records, and this
thread writes every batch to the sink in its turn, so the stream is the serial one, byte for
byte. Batches come from the one ordered walk, not from the plan's subtrees, so a huge folder
is shared between the readers like everything else.

Files above ``INLINE_MAX`` are left to this thread, which streams them in chunks when their
turn comes: a reader holds at most one batch (``BATCH_BYTES`` of file data), and at most
``AHEAD`` batches per reader wait to be merged, so memory does not grow with the tree.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from aether.pack import batchread
from aether.pack.packer import (
    BATCH_ENTRIES,
    FileRecord,
    Sink,
    TreeContents,
    read_batch_parts,
    stream_file,
)
from aether.pack.partition import Members
from aether.pack.walk import Entry

AHEAD = 4  # batches read ahead of the merge, per reader
# A batch's output: tar bytes, and large files (``Entry``) for the merging thread, in order;
# their records are None in the batch's ``files`` until they are streamed.
Parts = list[batchread.Members | Entry]


def available() -> bool:
    """True when batches are read by the native reader, which lets threads run in parallel."""
    native = batchread.native_read_batch
    return native is not None and batchread.read_batch is native


def write_threaded(
    entries: Iterable[Entry],
    sink: Sink,
    mtime: bytes,
    contents: TreeContents,
    threads: int,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> None:
    """Write the members of ``entries`` to ``sink`` (no end marker), adding to ``contents``."""
    batches = _batches(entries)
    pending: deque[Future[tuple[Parts, TreeContents]]] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="aether-read") as pool:
        try:
            for batch in islice(batches, threads * AHEAD):
                pending.append(pool.submit(_read, batch, mtime))
            while pending:
                parts, read = pending.popleft().result()
                for batch in islice(batches, 1):
                    pending.append(pool.submit(_read, batch, mtime))
                _merge(parts, read, sink, mtime, contents)
                if on_progress is not None:
                    on_progress(contents.tar_bytes, None)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _batches(entries: Iterable[Entry]) -> Iterator[Sequence[Entry]]:
    """``entries`` in batches; a plan's members come natively batched (``Members``)."""
    if isinstance(entries, Members):
        yield from entries.batches(BATCH_ENTRIES)
        return
    iterator = iter(entries)
    while batch := list(islice(iterator, BATCH_ENTRIES)):
        yield batch


def _read(batch: Sequence[Entry], mtime: bytes) -> tuple[Parts, TreeContents]:
    """One batch's parts and records (on a reader thread)."""
    contents = TreeContents()
    files: list[FileRecord | None] = contents.files  # type: ignore[assignment]
    parts: Parts = []
    for part in read_batch_parts(batch, mtime, contents):
        parts.append(part)
        if isinstance(part, Entry):
            files.append(None)  # streamed by the merging thread
    return parts, contents


def _merge(
    parts: Parts, read: TreeContents, sink: Sink, mtime: bytes, contents: TreeContents
) -> None:
    """Write one batch's parts to ``sink`` and its records into ``contents``, in order."""
    files = contents.files
    start = len(files)
    files.extend(read.files)
    contents.directories.extend(read.directories)
    contents.symlinks.extend(read.symlinks)
    large = (index for index in range(start, len(files)) if files[index] is None)
    for part in parts:
        if isinstance(part, Entry):
            files[next(large)] = stream_file(part, sink, mtime, contents)
        else:
            sink.write(part)
            contents.tar_bytes += len(part)

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

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    pending: deque[_Turn] = deque()
    readers = _Readers(threads, mtime)
    try:
        for batch in islice(batches, threads * AHEAD):
            pending.append(readers.submit(batch))
        while pending:
            parts, read = pending.popleft().result()
            for batch in islice(batches, 1):
                pending.append(readers.submit(batch))
            _merge(parts, read, sink, mtime, contents)
            if on_progress is not None:
                on_progress(contents.tar_bytes, None)
    except BaseException:
        readers.close(cancel=True)
        raise
    readers.close(cancel=False)


class _Turn:
    """One batch's parts and records, from the reader that read it to the merging thread.

    A lock held until the result is in: cheaper than a ``concurrent.futures.Future`` (whose
    module, and a condition per batch, the pack used to pay for on ~450 batches)."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self._value: tuple[Parts, TreeContents] | None = None
        self._error: BaseException | None = None

    def settle(self, value: tuple[Parts, TreeContents] | None, error: BaseException | None) -> None:
        self._value, self._error = value, error
        self._done.release()

    def result(self) -> tuple[Parts, TreeContents]:
        """The batch's output once it is read; what its reader raised, raised here."""
        self._done.acquire()
        self._done.release()  # a second look (none is made) would not block
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        assert self._value is not None
        return self._value


class _Stopped(Exception):
    """A batch no reader read: the pack stopped first."""


class _Readers:
    """``threads`` reader threads taking batches in the order they are submitted."""

    def __init__(self, threads: int, mtime: bytes) -> None:
        self._mtime = mtime
        self._jobs: queue.SimpleQueue[tuple[_Turn, Sequence[Entry]] | None] = queue.SimpleQueue()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        try:
            for index in range(threads):
                thread = threading.Thread(target=self._run, name=f"aether-read_{index}")
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.close(cancel=True)
            raise

    def submit(self, batch: Sequence[Entry]) -> _Turn:
        turn = _Turn()
        self._jobs.put((turn, batch))
        return turn

    def close(self, *, cancel: bool) -> None:
        """Stop the readers once they are done (``cancel``: leave the batches not started
        unread) and wait for them."""
        self._stopping = cancel
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            turn, batch = job
            if self._stopping:
                turn.settle(None, _Stopped())
                continue
            try:
                value = _read(batch, self._mtime)
            except BaseException as exc:  # raised on the merging thread, in the batch's turn
                turn.settle(None, exc)
            else:
                turn.settle(value, None)


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

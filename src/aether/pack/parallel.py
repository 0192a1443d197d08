"""Write a big tree's members in worker processes, merged back in archive order.

This is the parallel path of the pure-Python reader (where the ``_batchread`` extension is not
built); the native reader runs in threads instead (``threaded``).

The tar stream is a concatenation of members, so the plan's tasks can become tar bytes
independently: the workers take turns at the tasks, walk and read them, and stream the bytes
through their own pipe, each task followed by its manifest records; this process reads the
pipes in task order and feeds the one compressor, so the archive is the serial one, byte for
byte. It also writes every ``HOME_EVERY``-th task itself, in its turn: compressing leaves it
some CPU time to spare, and the workers' lead covers the wait. Per file the work is a few
system calls between bits of Python, so the GIL, not the disk, is the limit: hence processes,
not threads. They are forked (cheap, and nothing is imported again, also inside the zipapp)
before the compressor starts its threads. Plain pipes rather than ``multiprocessing`` queues:
those would pickle every segment, two more copies of the whole tree. Memory stays bounded: a
pipe holds ``PIPE_BYTES``, a worker one batch, and a worker that is ``BACKLOG_BYTES`` ahead
of the merge waits for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Iterator

from aether.errors import AetherError, InternalError
from aether.pack.compress import CompressedSink
from aether.pack.frames import DATA, DONE, ERROR, FrameReader, FrameWriter
from aether.pack.packer import TreeContents, new_file_record, write_members
from aether.pack.partition import Piece, entries_of
from aether.pack.walk import Walker

PIPE_BYTES = 1024 * 1024
# What a worker may hold, written but not yet read, before it waits: its lead over the
# worker whose task is being merged.
BACKLOG_BYTES = 16 * 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
HOME = -1  # the owner of the tasks this process writes itself
HOME_EVERY = 5


class Workers:
    """Forked workers, one pipe each; ``write_to`` merges their output in task order.

    Starting them raises OSError when the system has no process or pipe to spare. The owner
    calls ``close`` once: it reaps the workers (and stops them first after a failure).
    """

    def __init__(self, tasks: list[list[Piece]], walker: Walker, mtime: bytes, count: int):
        self._tasks = tasks
        self._walker = walker
        self._mtime = mtime
        count = min(count, len(tasks))
        self._owners = _owners(len(tasks), count)
        self._pids: list[int] = []
        self._readers: list[int] = []
        try:
            for worker in range(count):
                mine = [
                    task for task, owner in zip(tasks, self._owners, strict=True) if owner == worker
                ]
                self._fork(mine, walker, mtime)
        except BaseException:
            self.close(failed=True)
            raise

    def write_to(
        self,
        sink: CompressedSink,
        contents: TreeContents,
        *,
        on_skip: Callable[[str, str], None] | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        """Copy every task's bytes to ``sink`` in order, and its records into ``contents``.

        The tasks this process owns are written here, in their turn.
        """
        readers = [FrameReader(fd) for fd in self._readers]
        for task, owner in zip(self._tasks, self._owners, strict=True):
            if owner == HOME:
                members = entries_of(task, self._walker)
                write_members(members, sink, self._mtime, contents, on_progress=on_progress)
                continue
            reader = readers[owner]
            while True:
                kind, size = _next_header(reader)
                if kind == DATA:
                    _copy_payload(reader, size, sink)
                    contents.tar_bytes += size
                    if on_progress is not None:
                        on_progress(contents.tar_bytes, None)
                    continue
                payload = _next_payload(reader, size)
                if kind == ERROR:
                    raise pickle.loads(payload)
                columns, directories, symlinks, skipped = pickle.loads(payload)
                contents.files.extend(map(new_file_record, zip(*columns, strict=True)))
                contents.directories.extend(directories)
                contents.symlinks.extend(symlinks)
                for path, reason in skipped:
                    if on_skip is not None:
                        on_skip(path, reason)
                break

    def close(self, *, failed: bool) -> None:
        """Reap every worker; after a failure, stop them first."""
        for fd in self._readers:
            os.close(fd)
        self._readers = []
        statuses = []
        for pid in self._pids:
            if failed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        self._pids = []
        if not failed and any(statuses):
            raise InternalError(f"a packing worker exited with status {max(statuses)}")

    def _fork(self, tasks: list[list[Piece]], walker: Walker, mtime: bytes) -> None:
        read_fd, write_fd = os.pipe()
        if _F_SETPIPE_SZ is not None:
            with contextlib.suppress(OSError):  # a smaller pipe only means more switches
                fcntl.fcntl(write_fd, _F_SETPIPE_SZ, PIPE_BYTES)
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:
            _worker(tasks, walker, mtime, write_fd, [read_fd, *self._readers])
        os.close(write_fd)
        self._pids.append(pid)
        self._readers.append(read_fd)


def _owners(tasks: int, workers: int) -> list[int]:
    """Who writes each task: every ``HOME_EVERY``-th is written here, the rest in turn."""
    owners = []
    turn = 0
    for index in range(tasks):
        if HOME_EVERY and index % HOME_EVERY == HOME_EVERY - 1:
            owners.append(HOME)
        else:
            owners.append(turn)
            turn = (turn + 1) % workers
    return owners


def _next_header(reader: FrameReader) -> tuple[int, int]:
    with _worker_alive():
        return reader.read_header()


def _next_payload(reader: FrameReader, size: int) -> memoryview:
    view = memoryview(bytearray(size))
    with _worker_alive():
        reader.read_into(view)
    return view


def _copy_payload(reader: FrameReader, size: int, sink: CompressedSink) -> None:
    with _worker_alive():
        sink.write_from(reader.read_into, size)


@contextlib.contextmanager
def _worker_alive() -> Iterator[None]:
    try:
        yield
    except EOFError as exc:
        raise InternalError("a packing worker stopped unexpectedly; pack again") from exc


def _worker(
    tasks: list[list[Piece]], walker: Walker, mtime: bytes, fd: int, inherited: list[int]
) -> None:
    """The forked side: write the tasks, report, and leave without unwinding the caller."""
    # No garbage collection here: a finalizer of an object inherited from the parent (a
    # compressor's thread pool, say) could wait forever on a lock that a parent thread held.
    gc.disable()
    status = 1
    try:
        for other in inherited:
            os.close(other)
        out = FrameWriter(fd, BACKLOG_BYTES)
        try:
            _serve(tasks, walker, mtime, out)
            status = 0
        except BaseException as exc:
            out.send(ERROR, _portable(exc))
        out.flush()
    finally:
        os._exit(status)


def _serve(tasks: list[list[Piece]], walker: Walker, mtime: bytes, out: FrameWriter) -> None:
    skipped: list[tuple[str, str]] = []
    walker = dataclasses.replace(
        walker, on_skip=lambda path, reason: skipped.append((path, reason))
    )
    for task in tasks:
        contents = TreeContents()
        write_members(entries_of(task, walker), out, mtime, contents)
        # Columns of plain values pickle several times faster than a list of named tuples.
        columns = tuple(zip(*contents.files, strict=True)) or ((), (), (), ())
        out.send(DONE, (columns, contents.directories, contents.symlinks, skipped))
        skipped.clear()


def _portable(exc: BaseException) -> BaseException:
    """The exception to hand over: ours as they are, anything else as an InternalError."""
    if isinstance(exc, AetherError):
        return exc
    error = InternalError(f"packing failed: {type(exc).__name__}: {exc}")
    error.add_note("".join(traceback.format_exception(exc)))
    return error

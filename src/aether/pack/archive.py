"""A planned tree as a compressed tar stream into an open file, written here or in workers.

Small trees are written on the calling thread: starting processes would cost more than it
saves. Big ones are written by forked workers (``parallel``) when there is more than one CPU.
Both give the same bytes: the workers write the same members, merged back in order, and the
compressor is fed the same fixed-size chunks either way.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from aether.pack import tarcodec
from aether.pack.compress import CompressedSink
from aether.pack.packer import TreeContents, finish_tree, write_members
from aether.pack.partition import PLAN_PIECES, Plan, entries_of
from aether.pack.walk import Walker

if TYPE_CHECKING:
    from aether.pack.parallel import Workers

MAX_WORKERS = 4
log = logging.getLogger("aether.pack")


def default_workers(plan: Plan) -> int:
    """Worker processes for ``plan``: 0 (write here) for small trees or a single CPU.

    Reading a tree and compressing it cost about the same CPU time, so the workers get half
    the CPUs and the compressor the other half.
    """
    if not hasattr(os, "fork") or (plan.complete and len(plan.pieces) < PLAN_PIECES):
        return 0
    return min(usable_cpus() // 2, MAX_WORKERS)


def usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - macOS


def compressor_threads(workers: int) -> int | None:
    """zstd's threads beside ``workers`` processes (None: its default, all CPUs).

    The bytes do not depend on it; zstd spends less CPU time per byte on fewer threads.
    """
    return max(1, usable_cpus() - workers) if workers else None


def write_archive(
    plan: Plan,
    walker: Walker,
    handle: BinaryIO,
    compression: str,
    mtime: int,
    *,
    workers: int | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> tuple[TreeContents, str, str, int]:
    """Write the archive; returns (contents, tar_sha256, digest, compressed size).

    ``workers``: worker processes, 0 to write on this thread, None to choose by tree and CPUs.
    """
    mtime_field = tarcodec.mtime_field(mtime)
    count = default_workers(plan) if workers is None else workers
    contents = TreeContents()
    # Workers are forked before the compressor starts its threads.
    with gc_paused(), _forked(plan, walker, mtime_field, count) as forked:
        threads = compressor_threads(0 if forked is None else count)
        sink = CompressedSink(handle, compression, workers=threads)
        try:
            if forked is None:
                members = entries_of(plan.pieces, walker)
                write_members(members, sink, mtime_field, contents, on_progress=on_progress)
            else:
                forked.write_to(sink, contents, on_skip=walker.on_skip, on_progress=on_progress)
            finish_tree(sink, contents)
            tar_sha256, digest, size = sink.close()
        except BaseException:
            sink.abort()
            raise
    return contents, tar_sha256, digest, size


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while writing.

    A pack makes no reference cycles, but it keeps a record per file, and every full
    collection walks all of them while holding the GIL, which stalls the compressing thread.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _forked(plan: Plan, walker: Walker, mtime: bytes, count: int) -> Iterator[Workers | None]:
    """Started workers, or None to write on this thread (also when none can be started)."""
    if count < 1:
        yield None
        return
    from aether.pack.parallel import Workers  # only where fork exists

    try:
        workers = Workers(plan.tasks(), walker, mtime, count)
    except OSError as exc:
        log.debug("cannot start packing workers (%s); packing on one thread", exc)
        yield None
        return
    try:
        yield workers
    except BaseException:
        workers.close(failed=True)
        raise
    workers.close(failed=False)

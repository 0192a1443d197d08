"""A planned tree as a compressed tar stream into an open file, written here or in parallel.

Small trees are written on the calling thread: starting readers would cost more than it
saves. Big ones, when there is more than one CPU, are read by threads (``threaded``) when the
native reader is built, which reads without the GIL, and otherwise by forked workers
(``parallel``), which the pure-Python reader needs to run in parallel at all. All give the
same bytes: the readers write the same members, merged back in order, and the compressor is
fed the same fixed-size chunks either way.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from aether.errors import IOFailure
from aether.pack import batchread, tarcodec
from aether.pack.compress import CompressedSink
from aether.pack.manifest import build_manifest, render_ahead
from aether.pack.packer import TreeContents, finish_tree, write_members
from aether.pack.partial import create_partial
from aether.pack.partition import PLAN_PIECES, Plan, entries_of
from aether.pack.walk import Walker

if TYPE_CHECKING:
    from aether.pack.parallel import Workers

MAX_WORKERS = 4
log = logging.getLogger("aether.pack")


def default_workers(plan: Plan) -> int:
    """Readers for ``plan``: 0 (write here) for small trees or a single CPU.

    Reader threads (the native reader) take every CPU, as zstd's threads do: they are idle
    whenever the other side is busy. Forked workers get half the CPUs and the compressor the
    other half: reading a tree and compressing it cost about the same CPU time.
    """
    if plan.complete and len(plan.pieces) < PLAN_PIECES:
        return 0
    from aether.pack import threaded  # (not at the top: see write_archive)

    cpus = usable_cpus()
    if threaded.available():
        return min(cpus, MAX_WORKERS) if cpus > 1 else 0
    if not hasattr(os, "fork"):
        return 0
    return min(cpus // 2, MAX_WORKERS)


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
    while_closing: Callable[[TreeContents], None] | None = None,
    hash_tar: bool = True,
) -> tuple[TreeContents, str | None, str, int]:
    """Write the archive; returns (contents, tar_sha256, digest, compressed size).

    ``workers``: readers (threads, or worker processes without the native reader), 0 to
    write on this thread, None to choose by tree and CPUs. ``while_closing(contents)`` runs
    once every member is written, while the compressor finishes. ``hash_tar=False``: the
    uncompressed stream is not hashed and ``tar_sha256`` is None (a layer's; see
    ``artifact_manifest.TAR_SHA256``).
    """
    mtime_field = tarcodec.mtime_field(mtime)
    count = default_workers(plan) if workers is None else workers
    contents = TreeContents()
    in_threads = False
    if count > 0:  # a small tree (written here) never needs the reader threads' pool
        from aether.pack import threaded

        in_threads = threaded.available()
    # Workers are forked before the compressor starts its threads.
    with gc_paused(), _forked(plan, walker, mtime_field, 0 if in_threads else count) as forked:
        threads = compressor_threads(0 if forked is None else count)
        sink = CompressedSink(handle, compression, workers=threads, hash_tar=hash_tar)
        try:
            if forked is not None:
                forked.write_to(sink, contents, on_skip=walker.on_skip, on_progress=on_progress)
            else:
                members = entries_of(plan.pieces, walker)
                if in_threads:
                    threaded.write_threaded(
                        members, sink, mtime_field, contents, count, on_progress=on_progress
                    )
                else:
                    write_members(members, sink, mtime_field, contents, on_progress=on_progress)
            finish_tree(sink, contents)
            render_ahead(contents)  # while the compressor finishes
            if while_closing is not None:
                while_closing(contents)
            tar_sha256, digest, size = sink.close()
        except BaseException:
            sink.abort()
            raise
        finally:
            batchread.drop_spares()  # the readers' buffers
    return contents, tar_sha256, digest, size


class ArchiveFile(NamedTuple):
    """An archive written to ``temp`` (mode 0644), for the caller to rename into place."""

    temp: Path
    contents: TreeContents
    tar_sha256: str | None  # None: not hashed (a layer)
    digest: str
    size: int
    compression: str
    epoch: int

    def manifest(self, artifact_name: str) -> dict[str, Any]:
        """Its file index, for the archive once it is called ``artifact_name``."""
        return build_manifest(
            self.contents,
            artifact_name=artifact_name,
            compression=self.compression,
            digest=self.digest,
            tar_sha256=self.tar_sha256,
            size_bytes=self.size,
            source_date_epoch=self.epoch,
        )


@contextlib.contextmanager
def archive_file(
    plan: Plan,
    walker: Walker,
    folder: Path,
    label: str,
    compression: str,
    epoch: int,
    *,
    what: str,
    on_progress: Callable[[int, int | None], None] | None = None,
    while_closing: Callable[[TreeContents], None] | None = None,
    hash_tar: bool = True,
) -> Iterator[ArchiveFile]:
    """Write the archive to a new temporary file in ``folder`` (``.<label>.*.partial``) and
    yield it; the file is removed on the way out unless the caller renamed it. ``what`` names
    the archive in messages; ``hash_tar`` as for ``write_archive``.

    Written through the descriptor ``create_partial`` opened: opening it again with ``O_TRUNC``
    would make ext4 flush the whole file to disk when it is closed.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = create_partial(folder, f".{label}.", ".partial")
    except OSError as exc:
        raise IOFailure(f"cannot write to {folder}: {exc.strerror or exc}") from exc
    temp = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                written = write_archive(
                    plan,
                    walker,
                    handle,
                    compression,
                    epoch,
                    on_progress=on_progress,
                    while_closing=while_closing,
                    hash_tar=hash_tar,
                )
            os.chmod(temp, 0o644)
        except OSError as exc:
            raise IOFailure(f"cannot write {what}: {exc.strerror or exc}") from exc
        contents, tar_sha256, digest, size = written
        yield ArchiveFile(temp, contents, tar_sha256, digest, size, compression, epoch)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


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
    if count < 1 or not hasattr(os, "fork"):
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

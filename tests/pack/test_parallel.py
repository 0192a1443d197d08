"""The parallel packer: reader threads (with the native reader) and worker processes (with
the Python reader) give the serial archive and manifest, byte for byte."""

from __future__ import annotations

import io
import logging
import os
import resource
import threading
from pathlib import Path

import pytest
from pack_support import FILES, build_sample

from aether.errors import IOFailure, UsageError
from aether.pack import PackOptions, batchread, build_artifact, tarcodec, threaded
from aether.pack.archive import default_workers, write_archive
from aether.pack.ignore import IgnoreRules
from aether.pack.manifest import build_manifest, write_manifest
from aether.pack.packer import INLINE_MAX, TreeContents, write_members, write_tree
from aether.pack.parallel import HOME, HOME_EVERY, _owners
from aether.pack.partition import PLAN_PIECES, Piece, Plan, entries_of, plan_tree
from aether.pack.walk import FILE, Entry, Walker, walk_tree
from plugins.fresh_imports import modules_loaded_by

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the Python reader's path forks")


def awkward_tree(root: Path) -> Path:
    """The sample project plus what stresses the packer: many, empty, large and odd files."""
    build_sample(root)
    many = root / "node_modules" / "many"
    many.mkdir(parents=True)
    for index in range(300):  # more than one batch of entries in one folder
        (many / f"f{index:03d}.js").write_bytes(b"x" * (index * 37 % 1500))
    (root / "empty.txt").write_bytes(b"")
    (root / "block.bin").write_bytes(b"b" * 1024)  # a whole number of blocks: no padding
    (root / "inline-max.bin").write_bytes(os.urandom(INLINE_MAX))
    (root / "large.bin").write_bytes(os.urandom(3 * INLINE_MAX + 17))  # streamed in chunks
    (root / "node_modules" / "many" / "large-too.bin").write_bytes(os.urandom(INLINE_MAX + 1))
    tool = root / "node_modules" / "many" / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    os.symlink("tool.sh", root / "node_modules" / "many" / "tool-link")
    os.symlink("../node_modules/many", root / "lib" / "many-dir-link")
    os.symlink("gone.js", root / "lib" / "dangling.js")
    (root / "deep" / "a" / "b" / "c" / "d").mkdir(parents=True)  # empty nested folders
    for index in range(40):  # enough subtrees for tasks of every owner
        package = root / "node_modules" / f"pkg-{index:02d}"
        (package / "lib").mkdir(parents=True)
        (package / "package.json").write_text(f'{{"name": "pkg-{index:02d}"}}\n')
        (package / "lib" / "index.js").write_text(f"module.exports = {index};\n")
    return root


def write(
    root: Path, workers: int, pieces: int = PLAN_PIECES, compression: str = "zstd"
) -> tuple[bytes, TreeContents, str, str]:
    walker = Walker(os.fspath(root), IgnoreRules())
    out = io.BytesIO()
    contents, tar_sha256, digest, _ = write_archive(
        plan_tree(walker, pieces), walker, out, compression, 0, workers=workers
    )
    return out.getvalue(), contents, tar_sha256, digest


def manifest_bytes(written: tuple[bytes, TreeContents, str, str], path: Path) -> bytes:
    archive, contents, tar_sha256, digest = written
    manifest = build_manifest(
        contents,
        artifact_name="app.tar.zst",
        compression="zstd",
        digest=digest,
        tar_sha256=tar_sha256,
        size_bytes=len(archive),
        source_date_epoch=0,
    )
    write_manifest(path, manifest)
    return path.read_bytes()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return awkward_tree(tmp_path_factory.mktemp("parallel") / "app")


@pytest.fixture(scope="module")
def serial(tree: Path) -> tuple[bytes, TreeContents, str, str]:
    return write(tree, workers=0)


@pytest.mark.parametrize("pieces", [1, 3, 40, PLAN_PIECES])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_write_the_serial_archive_and_manifest(
    tree: Path, serial: tuple, pieces: int, workers: int, tmp_path: Path, reader: str
) -> None:
    written = write(tree, workers, pieces)
    assert written[0] == serial[0]
    assert written[1:] == serial[1:]
    manifest = manifest_bytes(written, tmp_path / "parallel.json")
    assert manifest == manifest_bytes(serial, tmp_path / "serial.json")


class Collect:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(bytes(data))


def test_the_serial_archive_is_the_one_of_the_plain_walk(tree: Path, serial: tuple) -> None:
    """Planning does not change the order: the plan's members are the walk's entries."""
    sink = Collect()
    contents = write_tree(walk_tree(tree, IgnoreRules()), sink, 0)
    assert contents == serial[1]
    _, gzip_contents, tar_sha256, _ = write(tree, workers=2, pieces=5, compression="gzip")
    assert tar_sha256 == serial[2] and gzip_contents == contents
    assert len(b"".join(sink.parts)) == contents.tar_bytes


@pytest.mark.parametrize("pieces", [1, 2, 7, 50, 10_000])
def test_a_plan_lists_the_walk_in_order(tree: Path, pieces: int) -> None:
    walker = Walker(os.fspath(tree), IgnoreRules())
    plan = plan_tree(walker, pieces)
    assert list(entries_of(plan.pieces, walker)) == walk_tree(tree, IgnoreRules())
    assert [piece for task in plan.tasks() for piece in task] == plan.pieces
    assert plan.complete == (pieces == 10_000)


def test_small_trees_are_written_here_and_big_ones_in_parallel(
    tree: Path, tmp_path: Path, reader: str
) -> None:
    small = build_sample(tmp_path / "small")
    assert default_workers(plan_tree(Walker(os.fspath(small), IgnoreRules()))) == 0
    big_plan = plan_tree(Walker(os.fspath(tree), IgnoreRules()), pieces=8)
    assert not big_plan.complete
    cpus = len(os.sched_getaffinity(0))
    assert threaded.available() == (reader == "native")
    if reader == "native":  # threads, as many as CPUs, beside zstd's
        assert default_workers(big_plan) == (min(cpus, 4) if cpus > 1 else 0)
    elif hasattr(os, "fork"):  # processes, half the CPUs; zstd gets the other half
        assert default_workers(big_plan) == min(cpus // 2, 4)


def test_reader_threads_share_a_huge_folder(tmp_path: Path) -> None:
    """One folder of many files is read in batches by every thread, not by one of them."""
    if batchread.native_read_batch is None:
        pytest.skip("the _batchread extension is not built")
    root, huge = sample_with_huge_folder(tmp_path, 2000)
    (huge / "bundle.js").write_bytes(os.urandom(2 * INLINE_MAX))  # streamed when merged
    seen: set[str] = set()
    real = batchread.native_read_batch

    def spy(*args: object) -> tuple[bytes, int, int]:
        seen.add(threading.current_thread().name)
        return real(*args)  # type: ignore[arg-type]

    batchread.read_batch = spy
    try:
        assert threaded.available() is False  # the spy is not the native reader
        walker = Walker(os.fspath(root), IgnoreRules())
        contents = TreeContents()
        sink = Collect()
        threaded.write_threaded(
            entries_of(plan_tree(walker, 4).pieces, walker),
            sink,
            tarcodec.mtime_field(0),
            contents,
            3,
        )
    finally:
        batchread.read_batch = real
    assert len(seen) > 1 and all(name.startswith("aether-read") for name in seen)
    serial = TreeContents()
    serial_sink = Collect()
    write_members(walk_tree(root, IgnoreRules()), serial_sink, tarcodec.mtime_field(0), serial)
    assert b"".join(sink.parts) == b"".join(serial_sink.parts)
    assert contents == serial


def test_build_artifact_on_a_big_tree_gives_the_serial_digest(tmp_path: Path) -> None:
    root = build_sample(tmp_path / "big")
    for package in range(40):
        folder = root / "node_modules" / f"pkg-{package:02d}" / "lib"
        folder.mkdir(parents=True)
        for index in range(20):
            (folder / f"m{index}.js").write_text(f"module.exports = {package * index};\n")
    plan = plan_tree(Walker(os.fspath(root), IgnoreRules()))
    assert not plan.complete  # big enough for workers wherever there are two CPUs
    _, contents, _, digest = write(root, workers=0)
    result = build_artifact(root, PackOptions(install=False, sbom=False), environ={})
    assert result.digest == digest
    assert result.files == len(contents.files) == 800 + len(FILES)
    assert result.bytes_in == sum(record.size for record in contents.files)


def test_an_unsafe_entry_deep_in_a_subtree_stops_the_pack(tree: Path, tmp_path: Path) -> None:
    root = awkward_tree(tmp_path / "app")
    os.symlink("/etc/passwd", root / "node_modules" / "many" / "evil")
    with pytest.raises(UsageError, match="node_modules/many/evil.*absolute") as caught:
        write(root, workers=2, pieces=3)
    assert caught.value.exit_code == 2
    assert_no_children_left()


def test_skipped_entries_are_reported_by_the_writing_process(tmp_path: Path) -> None:
    root = awkward_tree(tmp_path / "app")
    os.symlink("/etc/passwd", root / "node_modules" / "many" / "evil")
    os.mkfifo(root / "deep" / "a" / "pipe")
    skipped: list[tuple[str, str]] = []
    walker = Walker(
        os.fspath(root),
        IgnoreRules(),
        skip_unsafe=True,
        on_skip=lambda path, reason: skipped.append((path, reason)),
    )
    contents, *_ = write_archive(plan_tree(walker), walker, io.BytesIO(), "zstd", 0, workers=2)
    assert sorted(path for path, _ in skipped) == ["deep/a/pipe", "node_modules/many/evil"]
    assert "node_modules/many/evil" not in {path for path, _ in contents.symlinks}


def test_a_file_gone_before_its_worker_reads_it_is_an_io_failure(
    tmp_path: Path, reader: str
) -> None:
    root = build_sample(tmp_path / "app")
    walker = Walker(os.fspath(root), IgnoreRules())
    pieces = plan_tree(walker).pieces
    gone = Entry("gone.js", b"gone.js", FILE, os.fspath(root / "gone.js"))
    plan = Plan([*pieces[:2], Piece(gone, False), *pieces[2:]])
    with pytest.raises(IOFailure, match="cannot read gone.js") as caught:
        write_archive(plan, walker, io.BytesIO(), "zstd", 0, workers=2)
    assert caught.value.exit_code == 30
    assert_no_children_left()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("aether-")]


def test_a_failure_while_merging_stops_the_reader_threads(tmp_path: Path) -> None:
    """The sink refuses a write midway: that error comes out, and no reader is left running
    or reads the batches still queued."""
    if batchread.native_read_batch is None:
        pytest.skip("the _batchread extension is not built")
    root, _ = sample_with_huge_folder(tmp_path, 3000)
    read: list[int] = []
    real = batchread.read_batch

    def counting(*args: object) -> tuple[bytes, int, int]:
        read.append(1)
        return real(*args)  # type: ignore[arg-type]

    class Refusing(Collect):
        def write(self, data: bytes) -> None:
            if len(self.parts) == 3:
                raise OSError(28, "No space left on device")
            super().write(data)

    walker = Walker(os.fspath(root), IgnoreRules())
    batchread.read_batch = counting
    try:
        with pytest.raises(OSError, match="No space left"):
            threaded.write_threaded(
                entries_of(plan_tree(walker, 4).pieces, walker),
                Refusing(),
                tarcodec.mtime_field(0),
                TreeContents(),
                2,
            )
    finally:
        batchread.read_batch = real
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("aether-")]
    batches = -(-3000 // threaded.BATCH_ENTRIES)
    assert len(read) < batches  # what was still queued was left unread


def assert_no_children_left() -> None:
    """Every worker was reaped: this process has no child processes at all."""
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@needs_fork
def test_without_a_spare_pipe_the_pack_is_written_on_one_thread(
    tree: Path, serial: tuple, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batchread, "read_batch", batchread.read_batch_python)  # forked workers
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)  # every descriptor below it is in use
    os.close(lowest_free)
    # Exactly one free descriptor: files still open one at a time, os.pipe() fails (EMFILE).
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free + 1, hard))
    try:
        with caplog.at_level(logging.DEBUG, logger="aether.pack"):
            written = write(tree, workers=2, pieces=3)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "cannot start packing workers" in caplog.text
    assert written == serial
    assert_no_children_left()


@needs_fork
def test_this_process_writes_a_share_of_the_tasks_itself() -> None:
    owners = _owners(12, 2)
    home = [index for index, owner in enumerate(owners) if owner == HOME]
    assert home == [HOME_EVERY * n - 1 for n in range(1, 12 // HOME_EVERY + 1)]
    assert [owner for owner in owners if owner != HOME] == [0, 1] * 5


def test_a_small_tree_is_written_without_the_reader_threads_module(tmp_path: Path) -> None:
    """A code-only redeploy's app layer is a few files: written on the calling thread, so
    its pack imports neither the reader threads nor concurrent.futures (a few ms a start)."""
    for name, text in {"server.js": "1", "package.json": "{}", "lib/a.js": "2"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    loaded = modules_loaded_by(
        "import io\n"
        "from aether.pack.archive import write_archive\n"
        "from aether.pack.ignore import IgnoreRules\n"
        "from aether.pack.partition import plan_tree\n"
        "from aether.pack.walk import Walker\n"
        f"walker = Walker({str(tmp_path)!r}, IgnoreRules())\n"
        "contents, *_ = write_archive(plan_tree(walker), walker, io.BytesIO(), 'zstd', 0)\n"
        "assert len(contents.files) == 3, contents.files\n"
    )
    assert not loaded & {"aether.pack.threaded", "concurrent.futures"}


def sample_with_huge_folder(tmp_path: Path, files: int) -> tuple[Path, Path]:
    """The sample app with one dependency folder of ``files`` small files (and that folder)."""
    root = build_sample(tmp_path / "app")
    huge = root / "node_modules" / "huge"
    huge.mkdir(parents=True)
    for index in range(files):
        (huge / f"icon{index:04d}.js").write_bytes(b"export default %d;\n" % index)
    return root, huge

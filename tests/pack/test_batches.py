"""Native batches (the walk's entries kept in C) hold the walk's entries and read as they do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pack_support import mixed_tree, odd_tree

from aether.errors import IOFailure, UsageError
from aether.pack import batchread, threaded, walk
from aether.pack.ignore import IgnoreRules
from aether.pack.packer import TreeContents, write_members
from aether.pack.partition import entries_of, plan_entries
from aether.pack.walk import Walker, walk_tree

pytestmark = pytest.mark.skipif(
    walk.new_batch_native is None or batchread.native_read_batch is None,
    reason="the _scanfolder and _batchread extensions are not built",
)
MTIME = b"00000000000\0"


def walker_for(root: Path, **options: object) -> Walker:
    excluded = options.pop("excluded", ())
    return Walker(os.fspath(root), IgnoreRules.for_project(root, excluded), **options)  # type: ignore[arg-type]


def batches(walker: Walker, size: int, pieces: int = 4) -> list:
    plan = plan_entries(walker, walker.children(None), pieces)
    return list(entries_of(plan.pieces, walker).batches(size))


@pytest.mark.parametrize("size", [1, 3, 128])
@pytest.mark.parametrize("excluded", [(), ("plain/f7.js", "plain/deeper")])
def test_batches_hold_the_walk_in_order(
    tmp_path: Path, size: int, excluded: tuple[str, ...]
) -> None:
    root = mixed_tree(tmp_path / "app")
    skipped: list[tuple[str, str]] = []
    walker = walker_for(
        root, excluded=excluded, skip_unsafe=True, on_skip=lambda *item: skipped.append(item)
    )
    found = batches(walker, size)
    assert {type(batch).__name__ for batch in found} == {"Batch"}
    assert all(0 < len(batch) <= size for batch in found)
    expected = walk_tree(root, IgnoreRules.for_project(root, excluded), skip_unsafe=True)
    assert [entry for batch in found for entry in batch] == expected
    assert sorted(path for path, _ in skipped) == ["bytes/\udcff.js", "odd/pipe"]


def test_an_unsafe_entry_is_refused_by_name(tmp_path: Path) -> None:
    root = mixed_tree(tmp_path / "app")
    with pytest.raises(UsageError, match="odd/pipe|bytes/"):
        batches(walker_for(root), 128)


def test_mounts_are_walked_as_the_python_walk_does(tmp_path: Path) -> None:
    root = mixed_tree(tmp_path / "app")
    (root / "node_modules" / "left-out").mkdir(parents=True)  # the mount hides it
    installed = tmp_path / "installed"
    (installed / "dep" / "lib").mkdir(parents=True)
    (installed / "dep" / "lib" / "index.js").write_text("x")
    mounted = Walker(
        os.fspath(root),
        IgnoreRules(),
        skip_unsafe=True,
        mounts=(("node_modules", os.fspath(installed)),),
        real_bases=(os.fspath(installed),),
    )
    found = [entry for batch in batches(mounted, 5, pieces=1) for entry in batch]
    assert found == list(mounted._below(None))
    paths = [entry.path for entry in found]
    assert "node_modules/dep/lib/index.js" in paths and "node_modules/left-out" not in paths


def written(members: object, reader: batchread.Reader, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(batchread, "read_batch", reader)
    parts: list[bytes] = []

    class Sink:
        def write(self, data: bytes) -> None:
            parts.append(bytes(data))

    contents = TreeContents()
    if reader is batchread.read_batch_python:
        write_members(members, Sink(), MTIME, contents)  # type: ignore[arg-type]
    else:
        threaded.write_threaded(members, Sink(), MTIME, contents, 2)  # type: ignore[arg-type]
    return b"".join(parts), contents


def test_the_native_reader_writes_batches_as_the_python_one_writes_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = odd_tree(tmp_path / "app")
    walker = walker_for(root)
    plan = plan_entries(walker, walker.children(None), 4)
    expected = written(walk_tree(root, IgnoreRules()), batchread.read_batch_python, monkeypatch)
    native = batchread.native_read_batch
    assert native is not None
    assert written(entries_of(plan.pieces, walker), native, monkeypatch) == expected
    assert any(record.path.startswith("d" * 60) for record in expected[1].files)


def test_a_file_gone_after_the_walk_is_named_by_the_python_reader(tmp_path: Path) -> None:
    root = odd_tree(tmp_path / "app")
    (found,) = batches(walker_for(root), 1 << 20)
    gone = next(index for index, entry in enumerate(found) if entry.path == "size-513.bin")
    (root / "size-513.bin").unlink()
    native = batchread.native_read_batch
    assert native is not None
    files: list = []
    _, index, status = native(found, 0, MTIME, 1 << 30, 1 << 30, files, [], [], tuple)
    assert (index, status) == (gone, batchread.CAREFUL)
    with pytest.raises(IOFailure, match="cannot read size-513.bin"):
        batchread.read_batch_python(found, index, MTIME, 1 << 30, 1 << 30, [], [], [])


def test_a_walk_is_either_filled_or_iterated(tmp_path: Path) -> None:
    root = mixed_tree(tmp_path / "app")
    walker = walker_for(root, skip_unsafe=True)
    new_batch = walker.new_batch()
    assert new_batch is not None
    iterated = walker.below(None)
    next(iterated)
    with pytest.raises(TypeError, match="iterated"):
        iterated.fill(new_batch(), 4)  # type: ignore[attr-defined]
    filled = walker.below(None)
    batch = new_batch()
    with pytest.raises(ValueError, match="at least 1"):  # (else empty batches, forever)
        filled.fill(batch, 0)  # type: ignore[attr-defined]
    assert filled.fill(batch, 4) is True  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="fills batches"):
        next(filled)
    with pytest.raises(IndexError):
        batch[4]
    with pytest.raises(TypeError):
        batch.append("not an entry")  # type: ignore[arg-type]


def test_ignore_patterns_batch_python_entries(tmp_path: Path) -> None:
    root = mixed_tree(tmp_path / "app")
    (root / ".aetherignore").write_text("*.md\n")
    walker = Walker(os.fspath(root), IgnoreRules.for_project(root), skip_unsafe=True)
    assert walker.new_batch() is None
    found = batches(walker, 7)
    assert all(isinstance(batch, list) for batch in found)
    assert [entry for batch in found for entry in batch] == walk_tree(
        root, IgnoreRules.for_project(root), skip_unsafe=True
    )

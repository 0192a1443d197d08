"""The native folder listing gives the walk's entries, and leaves anything odd to the walk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pack_support import build_sample, mixed_tree

from aether.errors import IOFailure, UsageError
from aether.pack import walk
from aether.pack.ignore import IGNORE_FILE, IgnoreRules
from aether.pack.walk import walk_tree

native = walk.scan_folder_native
pytestmark = pytest.mark.skipif(native is None, reason="the _scanfolder extension is not built")


def walked(root: Path, lister, monkeypatch: pytest.MonkeyPatch, **options):
    monkeypatch.setattr(walk, "scan_folder_native", lister)
    skipped: list[tuple[str, str]] = []
    excluded = options.pop("excluded", ())
    entries = walk_tree(
        root,
        IgnoreRules.for_project(root, excluded),
        skip_unsafe=True,
        on_skip=lambda path, reason: skipped.append((path, reason)),
    )
    return entries, skipped


@pytest.mark.parametrize("excluded", [(), ("plain/f7.js", "plain/deeper")])
def test_the_walk_is_the_same_with_and_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, excluded: tuple[str, ...]
) -> None:
    root = mixed_tree(tmp_path / "app")
    expected = walked(root, None, monkeypatch, excluded=excluded)
    assert walked(root, native, monkeypatch, excluded=excluded) == expected
    paths = [entry.path for entry in expected[0]]
    assert ".git" not in paths and "lib/.git" not in paths and ".aether" not in paths
    assert ("plain/f7.js" in paths) == ("plain/deeper/élan.js" in paths) == (not excluded)
    assert sorted(path for path, _ in expected[1]) == ["bytes/\udcff.js", "odd/pipe"]


def test_it_answers_for_plain_folders_only(tmp_path: Path) -> None:
    root = mixed_tree(tmp_path / "app")
    rules = IgnoreRules()
    plain = rules.plain_exclusions()
    assert plain is not None
    listed = native(os.fspath(root / "plain"), "plain/", *plain, walk._new_entry)
    assert sorted(listed, key=lambda entry: entry.raw) == [
        entry
        for entry in walk_tree(root, rules, skip_unsafe=True)
        if entry.path.startswith("plain/") and entry.path.count("/") == 1
    ]
    assert native(os.fspath(root / "odd"), "odd/", *plain, walk._new_entry) is None
    assert native(os.fspath(root / "bytes"), "bytes/", *plain, walk._new_entry) is None
    assert native(os.fspath(root / "missing"), "missing/", *plain, walk._new_entry) is None


def test_ignore_patterns_leave_it_unused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = build_sample(tmp_path / "app")
    (root / IGNORE_FILE).write_text("*.md\n")

    def refuse(*args: object) -> None:
        raise AssertionError("patterns are the Python listing's job")

    monkeypatch.setattr(walk, "scan_folder_native", refuse)
    entries = walk_tree(root, IgnoreRules.for_project(root))
    assert not any(entry.path.endswith(".md") for entry in entries)


def test_an_unsafe_entry_is_still_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = mixed_tree(tmp_path / "app")
    monkeypatch.setattr(walk, "scan_folder_native", native)
    with pytest.raises(UsageError, match="bytes/.*not valid UTF-8"):
        walk_tree(root, IgnoreRules())


def test_the_native_walk_takes_mounts_and_subtrees_like_the_python_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = mixed_tree(tmp_path / "app")
    (root / "node_modules" / "left-out").mkdir(parents=True)  # the mount hides it
    installed = tmp_path / "installed"
    (installed / "dep" / "lib").mkdir(parents=True)
    (installed / "dep" / "lib" / "index.js").write_text("x")
    (installed / "dep" / "package.json").write_text("{}")
    mounted = walk.Walker(
        os.fspath(root),
        IgnoreRules(),
        skip_unsafe=True,
        mounts=(("node_modules", os.fspath(installed)),),
        real_bases=(os.fspath(installed),),
    )
    assert walk.walk_native is not None
    lib = next(entry for entry in mounted.children(None) if entry.path == "plain")
    native_walks = [list(mounted.below(None)), list(mounted.below(lib))]
    monkeypatch.setattr(walk, "walk_native", None)
    assert native_walks == [list(mounted.below(None)), list(mounted.below(lib))]
    paths = [entry.path for entry in native_walks[0]]
    assert "node_modules/dep/lib/index.js" in paths and "node_modules/left-out" not in paths
    assert native_walks[1][0].path == "plain/Zebra.js"


def test_a_folder_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(IOFailure, match="cannot read the folder .*missing"):
        walk_tree(tmp_path / "missing", IgnoreRules())


def test_the_native_walk_lists_a_folder_only_when_it_reaches_it(tmp_path: Path) -> None:
    # One call listing a whole subtree held the GIL for tens of milliseconds on a big tree.
    root = tmp_path / "app"
    for folder in ("a", "b", "c"):
        (root / folder).mkdir(parents=True)
        (root / folder / "index.js").write_text(folder)
    plain = IgnoreRules().plain_exclusions()
    assert plain is not None and walk.walk_native is not None
    asked: list[str] = []

    def children(folder: walk.Entry | None) -> list[walk.Entry]:
        assert folder is not None
        asked.append(folder.path)
        return []

    walking = walk.walk_native(
        os.fspath(root), None, *plain, walk._new_entry, children, frozenset({"b/"})
    )
    assert [next(walking).path, next(walking).path] == ["a", "a/index.js"]
    assert asked == []  # b is listed by `children`, and the walk has not reached it
    assert [entry.path for entry in walking] == ["b", "c", "c/index.js"]
    assert asked == ["b"]

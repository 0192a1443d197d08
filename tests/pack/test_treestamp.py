"""A tree's fingerprint: the native and Python walks agree, and every hand edit shows."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from aether.pack import treestamp
from aether.pack.treestamp import fingerprint, stamp_python

try:
    from aether.pack._scanfolder import stamp as native
except ImportError:  # pragma: no cover - an install without a C compiler
    native = None

needs_native = pytest.mark.skipif(native is None, reason="the _scanfolder extension is not built")


def installed(root: Path) -> Path:
    """A node_modules-like tree with what real installs hold: scopes, .bin links, odd names."""
    for package in ("left-pad", "@scope/a", "@scope/b", "zeta", "Zeta"):
        folder = root / package
        (folder / "lib" / "deep").mkdir(parents=True)
        (folder / "package.json").write_text(f'{{"name": "{package}"}}')
        (folder / "lib" / "index.js").write_text("module.exports = 1;\n")
        (folder / "lib" / "deep" / "x.js").write_text("x")
    (root / "empty").mkdir()
    (root / ".bin").mkdir()
    os.symlink("../left-pad/lib/index.js", root / ".bin" / "left-pad")
    os.symlink("../nowhere", root / ".bin" / "dangling")
    os.mkfifo(root / "left-pad" / "pipe")
    (root / "left-pad" / "élan.js").write_text("ü")
    Path(os.fsdecode(os.fsencode(root / "left-pad") + b"/\xff.js")).write_text("not UTF-8")
    return root


@needs_native
@pytest.mark.parametrize("prefix", [b"", b"pre/fix/"])
def test_the_native_walk_gives_the_python_walks_bytes(tmp_path: Path, prefix: bytes) -> None:
    root = installed(tmp_path / "node_modules")
    assert native is not None
    lines = native(os.fspath(root), prefix)
    assert lines == stamp_python(os.fspath(root), prefix)
    assert lines.count(b"\n") == sum(1 for _ in root.rglob("*"))
    assert native(os.fspath(root) + "/", prefix) == lines
    missing = os.fspath(tmp_path / "missing")
    expected = b"unreadable " + prefix.removesuffix(b"/") + b"\n"
    assert native(missing, prefix) == stamp_python(missing, prefix) == expected


def whole_walk(root: Path) -> str:
    """The fingerprint as one Python walk: the root's own line, then every entry's."""
    facts = os.lstat(root)
    head = b"\0%d %d %d %d %d\n" % (
        facts.st_ino,
        facts.st_mode,
        facts.st_size,
        facts.st_mtime_ns,
        facts.st_ctime_ns,
    )
    return hashlib.sha256(head + stamp_python(os.fspath(root))).hexdigest()


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_the_fingerprint_is_the_digest_of_one_walk(
    tmp_path: Path, threads: int, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    root = installed(tmp_path / "node_modules")
    assert fingerprint(root, threads) == whole_walk(root)
    monkeypatch.setattr(treestamp, "SPLIT_AFTER_SECS", 0.0)  # the helpers join at once
    assert fingerprint(root, threads) == whole_walk(root)


def test_a_small_tree_is_walked_without_starting_a_thread(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Starting a thread costs more than walking a small app's node_modules."""
    started: list[threading.Thread] = []

    class Counted(threading.Thread):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(treestamp, "threading", types.SimpleNamespace(Thread=Counted))
    root = installed(tmp_path / "node_modules")
    monkeypatch.setattr(treestamp, "SPLIT_AFTER_SECS", 60.0)
    assert fingerprint(root, 2) == whole_walk(root) and started == []
    monkeypatch.setattr(treestamp, "SPLIT_AFTER_SECS", 0.0)
    assert fingerprint(root, 2) == whole_walk(root) and len(started) == 1


def test_without_the_extension_the_fingerprint_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = installed(tmp_path / "node_modules")
    expected = fingerprint(root)
    monkeypatch.setattr(treestamp, "stamp", stamp_python)
    assert fingerprint(root) == expected


def test_a_missing_tree_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fingerprint(tmp_path / "missing")


def _rewrite_same_size(root: Path) -> None:
    target = root / "@scope" / "b" / "lib" / "deep" / "x.js"
    stat = target.stat()
    target.write_text("y")  # same size; the mtime moves on
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))


def _rewrite_keeping_mtime(root: Path) -> None:
    """What only the ctime shows: same size, the old mtime put back."""
    target = root / "left-pad" / "lib" / "deep" / "x.js"
    stat = target.stat()
    target.write_text("z")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


EDITS: dict[str, Callable[[Path], object]] = {
    "content, same size": _rewrite_same_size,
    "appended": lambda root: (root / "zeta" / "lib" / "index.js").write_text("// more\n"),
    "mode": lambda root: (root / "zeta" / "package.json").chmod(0o755),
    "added": lambda root: (root / "@scope" / "a" / "lib" / "new.js").write_text(""),
    "removed": lambda root: (root / "Zeta" / "lib" / "deep" / "x.js").unlink(),
    "renamed": lambda root: (root / "zeta" / "lib" / "index.js").rename(
        root / "zeta" / "lib" / "index2.js"
    ),
    "empty folder": lambda root: (root / "empty" / "sub").mkdir(),
    "link retargeted": lambda root: (
        (root / ".bin" / "left-pad").unlink(),
        os.symlink("../left-pad/lib/deep/x.js", root / ".bin" / "left-pad"),
    ),
    "file became a folder": lambda root: (
        (root / "zeta" / "package.json").unlink(),
        (root / "zeta" / "package.json").mkdir(),
    ),
    "replaced by a copy": lambda root: (
        shutil.copy2(root / "zeta" / "lib" / "index.js", root / "zeta" / "lib" / "copy.js"),
        (root / "zeta" / "lib" / "copy.js").replace(root / "zeta" / "lib" / "index.js"),
    ),
    "same size, mtime set back": _rewrite_keeping_mtime,
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_every_hand_edit_changes_the_fingerprint(tmp_path: Path, edit: str) -> None:
    root = installed(tmp_path / "node_modules")
    before = fingerprint(root)
    assert fingerprint(root) == before
    EDITS[edit](root)
    assert fingerprint(root) != before

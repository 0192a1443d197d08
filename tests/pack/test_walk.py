"""The walk's rules for symlinks and special files."""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import sys
from pathlib import Path

import pytest

from aether.errors import IOFailure, UsageError
from aether.pack import PackOptions, build_artifact
from aether.pack.ignore import IgnoreRules
from aether.pack.packer import write_tree
from aether.pack.walk import walk_tree


def project(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "lib").mkdir(parents=True)
    (root / "package.json").write_text("{}")
    (root / "lib" / "real.js").write_text("1")
    return root


def pack(root: Path, **options: object):
    return build_artifact(
        root,
        PackOptions(install=False, sbom=False, **options),
        environ={},  # type: ignore[arg-type]
    )


def symlinks_in(result) -> dict[str, str]:
    manifest = json.loads(result.manifest.read_text())
    return {item["path"]: item["target"] for item in manifest["symlinks"]}


def test_relative_symlinks_inside_the_tree_are_kept(tmp_path: Path) -> None:
    root = project(tmp_path)
    os.symlink("lib/real.js", root / "top.js")
    os.symlink("../lib", root / "lib" / "self")  # a directory link is not followed
    os.symlink("missing.js", root / "lib" / "dangling.js")  # dangling but inside
    assert symlinks_in(pack(root)) == {
        "top.js": "lib/real.js",
        "lib/self": "../lib",
        "lib/dangling.js": "missing.js",
    }


@pytest.mark.parametrize(
    ("target", "reason"),
    [("/etc/passwd", "absolute"), ("../../outside", "outside"), ("lib/../../x", "outside")],
)
def test_absolute_and_escaping_symlinks_are_refused(
    tmp_path: Path, target: str, reason: str
) -> None:
    root = project(tmp_path)
    os.symlink(target, root / "evil")
    with pytest.raises(UsageError, match=f"evil.*{reason}") as caught:
        pack(root)
    assert caught.value.exit_code == 2
    assert "--skip-unsafe" in caught.value.message


def test_a_symlink_escaping_through_another_symlink_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    os.symlink(".", root / "here")
    os.symlink("here/..", root / "up")  # lexically "." but really the parent folder
    with pytest.raises(UsageError, match="up"):
        pack(root)


def test_skip_unsafe_warns_and_leaves_them_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = project(tmp_path)
    os.symlink("/etc/passwd", root / "evil")
    os.mkfifo(root / "pipe")
    with caplog.at_level(logging.WARNING, logger="aether.pack"):
        result = pack(root, skip_unsafe=True)
    assert symlinks_in(result) == {}
    assert result.files == 2
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert "evil" in warned and "pipe" in warned


def test_fifos_and_sockets_are_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    os.mkfifo(root / "lib" / "pipe")
    with pytest.raises(UsageError, match="lib/pipe.*FIFO"):
        pack(root)
    os.unlink(root / "lib" / "pipe")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(os.fspath(root / "sock"))
        with pytest.raises(UsageError, match="sock"):
            pack(root)
    finally:
        server.close()


def test_ignored_special_files_do_not_matter(tmp_path: Path) -> None:
    root = project(tmp_path)
    os.mkfifo(root / "pipe")
    (root / ".aetherignore").write_text("pipe\n")
    assert pack(root).files == 3


def test_a_file_that_vanishes_before_it_is_read_is_an_io_failure(tmp_path: Path) -> None:
    root = project(tmp_path)
    entries = walk_tree(root, IgnoreRules())
    (root / "lib" / "real.js").unlink()
    written: list[bytes] = []

    class Collect:
        def write(self, data: bytes) -> None:
            written.append(data)

    with pytest.raises(IOFailure, match="lib/real.js") as caught:
        write_tree(entries, Collect(), 0)
    assert caught.value.exit_code == 30


def test_deep_nesting_does_not_recurse(tmp_path: Path) -> None:
    root = project(tmp_path)
    deep = root
    for _ in range(200):
        deep = deep / "d"
        deep.mkdir()
    limit = sys.getrecursionlimit()
    # 60 frames of head-room: far less than one per level of the tree.
    sys.setrecursionlimit(len(inspect.stack(0)) + 60)
    try:
        entries = walk_tree(root, IgnoreRules())
    finally:
        sys.setrecursionlimit(limit)
    assert len([e for e in entries if e.kind == "dir"]) == 201  # lib + 200 levels


def test_names_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root.joinpath("lib") / os.fsdecode(b"caf\xe9.js")).write_text("latin-1 name")
    with pytest.raises(UsageError, match="not valid UTF-8"):
        pack(root)
    assert pack(root, skip_unsafe=True).files == 2


def test_out_file_suffix_must_fit_the_compression(tmp_path: Path) -> None:
    root = project(tmp_path)
    with pytest.raises(UsageError, match="does not fit --compression zstd"):
        pack(root, out=tmp_path / "app.tar.gz")
    assert pack(root, out=tmp_path / "app.tgz", compression="gzip").artifact.name == "app.tgz"

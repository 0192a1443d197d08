"""A file index written while the archive is compressed has write_manifest's bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from aether.pack import manifest
from aether.pack.index_ahead import HEX_DIGEST, IndexAhead
from aether.pack.manifest import build_manifest, write_manifest
from aether.pack.packer import FileRecord, TreeContents


def contents(count: int) -> TreeContents:
    written = TreeContents(
        files=[
            FileRecord(f"lib/é {index}.js", index * 1000, 0o644, "cd" * 32)
            for index in range(count)
        ],
        directories=[f"lib/d{index}" for index in range(count)],
        symlinks=[("link", "lib/é 0.js")],
    )
    manifest.render_ahead(written)
    return written


def index(written: TreeContents, digest: str, size: int) -> dict[str, object]:
    return build_manifest(
        written,
        artifact_name=f"{digest}.tar.zst",
        compression="zstd",
        digest=digest,
        tar_sha256=digest[::-1],
        size_bytes=size,
        source_date_epoch=7,
    )


def test_it_writes_what_write_manifest_writes(tmp_path: Path) -> None:
    for count in (1, 5000):
        written = contents(count)
        digest = hashlib.sha256(str(count).encode()).hexdigest()
        with IndexAhead(tmp_path, "deps") as ahead:
            # the draft's size has fewer digits than the final one: only the tail grows
            ahead.write_lines(index(written, HEX_DIGEST, 0))
            sha256 = ahead.finish(tmp_path / "ahead.json", index(written, digest, 123_456_789))
        expected = write_manifest(tmp_path / "plain.json", index(written, digest, 123_456_789))
        assert sha256 == expected
        assert (tmp_path / "ahead.json").read_bytes() == (tmp_path / "plain.json").read_bytes()
        assert (tmp_path / "ahead.json").stat().st_mode & 0o777 == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ahead.json", "plain.json"]


def test_without_lines_rendered_ahead_it_writes_the_plain_way(tmp_path: Path) -> None:
    empty = TreeContents()
    manifest.render_ahead(empty)  # nothing to render
    with IndexAhead(tmp_path, "app") as ahead:
        ahead.write_lines(index(empty, HEX_DIGEST, 0))
        sha256 = ahead.finish(tmp_path / "index.json", index(empty, "a" * 64, 1))
    assert sha256 == hashlib.sha256((tmp_path / "index.json").read_bytes()).hexdigest()
    assert [path.name for path in tmp_path.iterdir()] == ["index.json"]


def test_a_draft_of_another_shape_is_not_used(tmp_path: Path) -> None:
    written = contents(3)
    with IndexAhead(tmp_path, "deps") as ahead:
        ahead.write_lines(index(written, HEX_DIGEST, 0))
        longer_name = {**index(written, "b" * 64, 9), "artifact": "b" * 64 + ".tar.gz.old"}
        sha256 = ahead.finish(tmp_path / "index.json", longer_name)
    write_manifest(tmp_path / "plain.json", longer_name)
    assert (tmp_path / "index.json").read_bytes() == (tmp_path / "plain.json").read_bytes()
    assert sha256 == hashlib.sha256((tmp_path / "plain.json").read_bytes()).hexdigest()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["index.json", "plain.json"]


def test_an_abandoned_index_leaves_no_file(tmp_path: Path) -> None:
    with IndexAhead(tmp_path, "deps") as ahead:
        ahead.write_lines(index(contents(10), HEX_DIGEST, 0))
        assert len(list(tmp_path.iterdir())) == 1
    assert list(tmp_path.iterdir()) == []

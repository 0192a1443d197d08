"""The manifest file: sorted JSON with one list item per line, whatever the list's length."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from aether.pack import manifest
from aether.pack.manifest import build_manifest, write_manifest
from aether.pack.packer import FileRecord, TreeContents

COUNT = manifest._SLICE_ITEMS * 2 + 3  # slices end inside the list and at its end


def long_contents() -> TreeContents:
    return TreeContents(
        files=[
            FileRecord(
                f'dir/"quoted" é {index}.js', index, 0o755 if index % 3 else 0o644, "ab" * 32
            )
            for index in range(COUNT)
        ],
        directories=[f"dir{index}" for index in range(COUNT)],
        symlinks=[("link", "dir/target")],
    )


def manifest_data(contents: TreeContents) -> dict[str, object]:
    return build_manifest(
        contents,
        artifact_name="app.tar.zst",
        compression="zstd",
        digest="0" * 64,
        tar_sha256="1" * 64,
        size_bytes=1,
        source_date_epoch=0,
    )


def test_long_lists_read_back_and_keep_one_item_per_line(tmp_path: Path) -> None:
    contents = long_contents()
    data = manifest_data(contents)
    count = COUNT
    path = tmp_path / "manifest.json"
    assert write_manifest(path, data) == hashlib.sha256(path.read_bytes()).hexdigest()
    text = path.read_text(encoding="utf-8")
    expected = {
        **data,
        "files": [
            {"blake3": blake3, "mode": f"{mode:04o}", "path": name, "size": size}
            for name, size, mode, blake3 in contents.files
        ],
        "symlinks": [{"path": "link", "target": "dir/target"}],
    }
    assert json.loads(text) == expected
    lines = text.splitlines()
    # braces, a line per key, a closing line per list, and the items
    assert len(lines) == 2 + len(data) + 3 + 2 * count + 1
    first_file = lines.index('  "files": [') + 1
    assert json.loads(lines[first_file].rstrip(",")) == expected["files"][0]


def test_files_rendered_ahead_are_written_as_they_would_be(tmp_path: Path) -> None:
    plain, ahead = long_contents(), long_contents()
    manifest.render_ahead(ahead)
    assert ahead.files_lines is not None and ahead == plain
    write_manifest(tmp_path / "plain.json", manifest_data(plain))
    write_manifest(tmp_path / "ahead.json", manifest_data(ahead))
    assert (tmp_path / "ahead.json").read_bytes() == (tmp_path / "plain.json").read_bytes()
    empty = TreeContents()
    manifest.render_ahead(empty)
    write_manifest(tmp_path / "empty.json", manifest_data(empty))
    assert json.loads((tmp_path / "empty.json").read_text(encoding="utf-8"))["files"] == []


ODD_PATHS = [
    "a.js",
    'dir/"quoted" \\ back\\slash.js',
    "tab\there, new\nline, cr\r, bell\x07, esc\x1b, del\x7f, nul\x00, bs\b, ff\f, us\x1f",
    "élan/ünïcode/日本語/🎉.js",
    "x" * 300,
]


def test_the_native_file_lines_are_the_python_ones() -> None:
    native = pytest.importorskip("aether.pack._manifest")
    records = [
        FileRecord(path, size, mode, digest)
        for path in ODD_PATHS
        for size, mode, digest in [(0, 0o644, "ab" * 32), (2**40 + 3, 0o755, "cd" * 32)]
    ] + [FileRecord("odd-mode", 7, 0o100711, "ef" * 32), FileRecord("bare", 1, 0o7, "")]
    records += long_contents().files
    expected = manifest.file_lines_python(records)
    assert native.file_lines(records) == expected
    for single in records[:3]:
        assert native.file_lines([single]) == manifest.file_lines_python([single])
    assert manifest.file_lines(records) == expected


@pytest.mark.parametrize(
    "odd",
    [
        ("a", 1, 0o644),  # too short
        ("a", True, 0o644, "ab"),  # not plain ints
        ("a", 1, 0o644, None),
        ("bad \udcff surrogate", 1, 0o644, "ab"),
        ("a", -1, 0o644, "ab"),
    ],
)
def test_records_the_native_lines_do_not_expect_are_left_to_python(odd: tuple) -> None:
    native = pytest.importorskip("aether.pack._manifest")
    records = [FileRecord("a.js", 1, 0o644, "ab" * 32), tuple.__new__(FileRecord, odd)]
    assert native.file_lines(records) is None
    assert native.file_lines([]) is None

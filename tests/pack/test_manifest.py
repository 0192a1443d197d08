"""The manifest file: sorted JSON with one list item per line, whatever the list's length."""

from __future__ import annotations

import json
from pathlib import Path

from aether.pack import manifest
from aether.pack.manifest import build_manifest, write_manifest
from aether.pack.packer import FileRecord, TreeContents


def test_long_lists_read_back_and_keep_one_item_per_line(tmp_path: Path) -> None:
    count = manifest._SLICE_ITEMS * 2 + 3  # slices end inside the list and at its end
    contents = TreeContents(
        files=[
            FileRecord(
                f'dir/"quoted" é {index}.js', index, 0o755 if index % 3 else 0o644, "ab" * 32
            )
            for index in range(count)
        ],
        directories=[f"dir{index}" for index in range(count)],
        symlinks=[("link", "dir/target")],
    )
    data = build_manifest(
        contents,
        artifact_name="app.tar.zst",
        compression="zstd",
        digest="0" * 64,
        tar_sha256="1" * 64,
        size_bytes=1,
        source_date_epoch=0,
    )
    path = tmp_path / "manifest.json"
    write_manifest(path, data)
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

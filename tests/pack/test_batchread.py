"""The native batch reader writes what the Python one writes, byte for byte, whatever comes."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest
from pack_support import build_sample, odd_tree

from aether.errors import IOFailure
from aether.pack import batchread, tarcodec
from aether.pack.ignore import IgnoreRules
from aether.pack.packer import INLINE_MAX, TreeContents, new_file_record, write_tree
from aether.pack.walk import FILE, SYMLINK, Entry, walk_tree

MTIME = tarcodec.mtime_field(1_700_000_000)
native = batchread.native_read_batch
pytestmark = pytest.mark.skipif(native is None, reason="the _batchread extension is not built")


def packed(root: Path, reader: batchread.Reader, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(batchread, "read_batch", reader)
    parts: list[bytes] = []

    class Sink:
        def write(self, data: bytes) -> None:
            parts.append(bytes(data))

    contents = write_tree(walk_tree(root, IgnoreRules()), Sink(), 1_700_000_000)
    return b"".join(parts), contents


def test_whole_trees_come_out_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = odd_tree(tmp_path / "app")
    expected = packed(root, batchread.read_batch_python, monkeypatch)
    assert packed(root, native, monkeypatch) == expected
    assert len(expected[0]) == expected[1].tar_bytes


@pytest.mark.parametrize("budget", [1, 700, 5000, 1 << 30])
def test_every_stop_is_the_same(tmp_path: Path, budget: int) -> None:
    """Same blobs, same next index, same status, call after call, for any budget."""
    entries = walk_tree(odd_tree(tmp_path / "app"), IgnoreRules())
    calls = {}
    for name, reader in (("python", batchread.read_batch_python), ("native", native)):
        contents, index, steps = TreeContents(), 0, []
        while index < len(entries):
            blob, index, status = reader(
                entries,
                index,
                MTIME,
                budget,
                INLINE_MAX,
                contents.files,
                contents.directories,
                contents.symlinks,
                new_file_record,
            )
            steps.append((blob, index, status))
            index += status == batchread.LARGE  # as the packer does after streaming it
        calls[name] = (steps, contents)
    assert calls["native"] == calls["python"]
    assert any(status == batchread.LARGE for _, _, status in calls["native"][0])


@pytest.mark.parametrize("problem", ["missing", "fifo", "unreadable", "not-utf8-source"])
def test_what_the_native_reader_cannot_read_is_named_by_the_python_one(
    tmp_path: Path, problem: str, reader: str
) -> None:
    root = build_sample(tmp_path / "app")
    entries = walk_tree(root, IgnoreRules())
    odd = root / "odd.js"
    source = os.fspath(odd)
    if problem == "fifo":
        os.mkfifo(odd)
    elif problem == "unreadable":
        odd.write_text("secret\n")
        odd.chmod(0)
    elif problem == "not-utf8-source":
        source = os.fsdecode(os.fsencode(root) + b"/\xff.js")
    entries.insert(1, Entry("odd.js", b"odd.js", FILE, source))
    if problem == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    with pytest.raises(IOFailure, match="odd.js"):
        write_tree(entries, tarcodec_sink(), 0)


def tarcodec_sink():
    class Sink:
        def write(self, data: bytes) -> None:
            pass

    return Sink()


def test_a_symlink_without_a_target_is_an_empty_link(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [Entry("link", b"link", SYMLINK, "/nowhere", None)]
    results = []
    for reader in (batchread.read_batch_python, native):
        symlinks: list = []
        blob, index, status = reader(entries, 0, MTIME, 1, INLINE_MAX, [], [], symlinks, tuple)
        results.append((blob, index, status, symlinks))
    assert results[0] == results[1]
    assert results[0][3] == [("link", "")]


def test_a_file_shorter_than_its_size_leaves_no_header_behind(tmp_path: Path) -> None:
    """The native reader stops before a file that ends early, its header taken back."""
    short = Path("/sys/kernel/mm/transparent_hugepage/enabled")  # says 4096 bytes, has fewer
    if not short.is_file() or os.stat(short).st_size <= len(short.read_bytes()):
        pytest.skip("no file here that is shorter than its size")
    (tmp_path / "before.js").write_text("before\n")
    entries = [
        Entry("before.js", b"before.js", FILE, os.fspath(tmp_path / "before.js")),
        Entry("short", b"short", FILE, os.fspath(short)),
    ]
    expected = batchread.read_batch_python(
        entries[:1], 0, MTIME, 1 << 30, INLINE_MAX, [], [], [], new_file_record
    )[0]
    blob, index, status = native(
        entries, 0, MTIME, 1 << 30, INLINE_MAX, [], [], [], new_file_record
    )
    assert (blob, index, status) == (expected, 1, batchread.CAREFUL)
    with pytest.raises(IOFailure, match="short shrank"):
        write_tree(entries, tarcodec_sink(), 0)


@pytest.mark.parametrize(
    "size",
    [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4095, 4096, 4097, 16 * 1024 + 1,
     64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 1024 * 1024 + 7, 9_000_001],
)  # fmt: skip
def test_the_native_blake3_is_the_reference_one(size: int) -> None:
    """One chunk, its edges, the SIMD widths' edges (4, 8, 16 chunks) and a tree of many."""
    from aether.pack._batchread import blake3_hex

    data = os.urandom(size)
    assert blake3_hex(data) == blake3.blake3(data).hexdigest()


def test_files_of_every_edge_size_are_recorded_with_the_reference_blake3(tmp_path: Path) -> None:
    sizes = [0, 1, 1023, 1024, 1025, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, INLINE_MAX]
    for size in sizes:
        (tmp_path / f"{size:08d}.bin").write_bytes(os.urandom(size))
    entries = walk_tree(tmp_path, IgnoreRules())
    files: list = []
    native(entries, 0, MTIME, 1 << 30, INLINE_MAX, files, [], [], new_file_record)
    expected = {
        f"{size:08d}.bin": blake3.blake3((tmp_path / f"{size:08d}.bin").read_bytes()).hexdigest()
        for size in sizes
    }
    assert {record.path: record.blake3 for record in files} == expected


def test_a_batch_kept_by_its_reader_is_not_reused_by_later_batches(tmp_path: Path) -> None:
    """The native reader hands out its buffer without a copy; the buffer is taken for another
    batch only once every view of it is gone."""
    entries = walk_tree(odd_tree(tmp_path / "app"), IgnoreRules())
    kept, _, _ = native(entries, 0, MTIME, 1 << 30, INLINE_MAX, [], [], [], new_file_record)
    expected = bytes(kept)
    assert isinstance(kept, memoryview) and kept.readonly
    for _ in range(40):  # more than the buffers it keeps for reuse
        blob, _, _ = native(entries, 0, MTIME, 1 << 30, INLINE_MAX, [], [], [], new_file_record)
        del blob
    assert bytes(kept) == expected
    batchread.drop_spares()
    assert bytes(kept) == expected


def test_a_name_with_a_nul_is_left_to_the_python_reader(tmp_path: Path) -> None:
    """The native reader never opens the name cut at the NUL (another file)."""
    (tmp_path / "a.js").write_text("a\n")
    entries = [
        Entry("a.js", b"a.js", FILE, os.fspath(tmp_path / "a.js")),
        Entry("b.js", b"b.js", FILE, os.fspath(tmp_path / "a.js") + "\0b.js"),
    ]
    files: list = []
    blob, index, status = native(entries, 0, MTIME, 1 << 30, INLINE_MAX, files, [], [], tuple)
    assert (index, status) == (1, batchread.CAREFUL)
    assert [record[0] for record in files] == ["a.js"]

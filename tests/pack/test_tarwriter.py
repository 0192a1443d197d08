"""The lean header writer against CPython's tarfile reader: checksums, pax records, padding."""

from __future__ import annotations

import io
import tarfile

import pytest

from aether.pack import tarwriter

MTIME = tarwriter.mtime_field(0)


def read_back(*chunks: bytes) -> list[tarfile.TarInfo]:
    raw = b"".join(chunks)
    raw += tarwriter.end_of_archive(len(raw))
    assert len(raw) % tarwriter.RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        return archive.getmembers()


@pytest.mark.parametrize("name_length", [1, 99, 100, 101, 250, 1000])
def test_names_of_any_length(name_length: int) -> None:
    name = ("d/" * 200)[: name_length - 1] + "f"
    data = b"hello"
    header = tarwriter.file_header(name.encode(), 0o644, len(data), MTIME)
    (member,) = read_back(header, data, tarwriter.padding(len(data)))
    assert member.name == name and member.size == 5
    assert bool(member.pax_headers) is (name_length > 100)


def test_fast_path_equals_the_general_header() -> None:
    for name, mode, size in [(b"a.js", 0o644, 0), (b"bin/x", 0o755, 12345), (b"n" * 100, 0o644, 1)]:
        fast = tarwriter.file_header(name, mode, size, MTIME)
        assert fast == tarwriter.entry_header(name, tarwriter.REGTYPE, mode, size, MTIME)


def test_pax_record_lengths_count_themselves() -> None:
    for size in range(1, 1200, 7):
        record = tarwriter._pax_record(b"path", b"x" * size)
        length, _, _ = record.partition(b" ")
        assert int(length) == len(record)


def test_long_symlink_target_and_directory() -> None:
    target = ("../" * 3 + "t" * 150).encode()
    members = read_back(
        tarwriter.directory_header(b"dir/", MTIME),
        tarwriter.symlink_header(b"dir/link", target, MTIME),
    )
    assert [m.name for m in members] == ["dir", "dir/link"]
    assert members[0].isdir() and members[0].mode == 0o755
    assert members[1].issym() and members[1].linkname == target.decode()


def test_sizes_beyond_the_octal_field_use_a_pax_record() -> None:
    header = tarwriter.file_header(b"huge.bin", 0o644, 2**34, MTIME)
    assert b"size=17179869184" in header
    assert len(header) == 3 * tarwriter.BLOCK


def test_modes_are_normalised() -> None:
    assert tarwriter.normalised_mode(0o100700) == 0o755
    assert tarwriter.normalised_mode(0o100001) == 0o755
    assert tarwriter.normalised_mode(0o100600) == 0o644
    assert tarwriter.normalised_mode(0o040700, is_dir=True) == 0o755
    with pytest.raises(ValueError):
        tarwriter.mtime_field(-1)

"""The tar codec against CPython's tarfile: what it writes, tarfile and the codec read alike."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from aether.pack import PackOptions, build_artifact, tarcodec
from aether.pack.reader import open_tar_stream

MTIME = tarcodec.mtime_field(0)


def read_back(*chunks: bytes) -> list[tarfile.TarInfo]:
    raw = b"".join(chunks)
    raw += tarcodec.end_of_archive(len(raw))
    assert len(raw) % tarcodec.RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        return archive.getmembers()


@pytest.mark.parametrize("name_length", [1, 99, 100, 101, 250, 1000])
def test_names_of_any_length(name_length: int) -> None:
    name = ("d/" * 200)[: name_length - 1] + "f"
    data = b"hello"
    header = tarcodec.file_header(name.encode(), 0o644, len(data), MTIME)
    (member,) = read_back(header, data, tarcodec.padding(len(data)))
    assert member.name == name and member.size == 5
    assert bool(member.pax_headers) is (name_length > 100)


def test_fast_path_equals_the_general_header() -> None:
    for name, mode, size in [(b"a.js", 0o644, 0), (b"bin/x", 0o755, 12345), (b"n" * 100, 0o644, 1)]:
        fast = tarcodec.file_header(name, mode, size, MTIME)
        assert fast == tarcodec.entry_header(name, tarcodec.REGTYPE, mode, size, MTIME)


def test_pax_record_lengths_count_themselves() -> None:
    for size in range(1, 1200, 7):
        record = tarcodec._pax_record(b"path", b"x" * size)
        length, _, _ = record.partition(b" ")
        assert int(length) == len(record)


def test_long_symlink_target_and_directory() -> None:
    target = ("../" * 3 + "t" * 150).encode()
    members = read_back(
        tarcodec.directory_header(b"dir/", MTIME),
        tarcodec.symlink_header(b"dir/link", target, MTIME),
    )
    assert [m.name for m in members] == ["dir", "dir/link"]
    assert members[0].isdir() and members[0].mode == 0o755
    assert members[1].issym() and members[1].linkname == target.decode()


def test_sizes_beyond_the_octal_field_use_a_pax_record() -> None:
    header = tarcodec.file_header(b"huge.bin", 0o644, 2**34, MTIME)
    assert b"size=17179869184" in header
    assert len(header) == 3 * tarcodec.BLOCK


def test_modes_are_normalised() -> None:
    assert tarcodec.normalised_mode(0o100700) == 0o755
    assert tarcodec.normalised_mode(0o100001) == 0o755
    assert tarcodec.normalised_mode(0o100600) == 0o644
    assert tarcodec.normalised_mode(0o040700, is_dir=True) == 0o755
    with pytest.raises(ValueError):
        tarcodec.mtime_field(-1)


# --- reading back ------------------------------------------------------------------------------


def codec_members(raw: bytes) -> list[tarcodec.Member]:
    source = io.BytesIO(raw)
    members = []
    for member in tarcodec.read_headers(source):
        source.read(tarcodec.data_blocks(member.size))
        members.append(member)
    return members


def described(name: str, typeflag: bytes, mode: int, size: int, linkname: str) -> tuple:
    kind = {b"0": "file", b"5": "dir", b"2": "symlink"}[typeflag]
    return (name.rstrip("/"), kind, mode, size, linkname)


def tarfile_view(member: tarfile.TarInfo) -> tuple:
    kind = "dir" if member.isdir() else "symlink" if member.issym() else "file"
    return (member.name, kind, member.mode, member.size, member.linkname)


def test_what_the_writer_writes_the_codec_and_tarfile_read_alike() -> None:
    long_dir = ("d/" * 80).encode()
    chunks = [
        tarcodec.directory_header(long_dir, MTIME),
        tarcodec.symlink_header(b"l", ("../" * 40 + "t").encode(), MTIME),
        tarcodec.file_header("naïve ünïcode.js".encode(), 0o755, 3, MTIME),
        b"abc",
        tarcodec.padding(3),
        tarcodec.file_header(long_dir + b"f" * 120, 0o644, 0, MTIME),
    ]
    raw = b"".join(chunks)
    raw += tarcodec.end_of_archive(len(raw))
    ours = [described(m.name, m.typeflag, m.mode, m.size, m.linkname) for m in codec_members(raw)]
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        assert ours == [tarfile_view(member) for member in archive.getmembers()]


def test_raw_records_rebuild_the_stream_and_a_huge_size_comes_from_its_pax_record() -> None:
    header = tarcodec.file_header(b"huge.bin", 0o644, 2**34, MTIME)
    member = next(tarcodec.read_headers(io.BytesIO(header)))  # its data is not there
    assert member.size == 2**34 and member.name == "huge.bin" and member.raw == header
    small = tarcodec.file_header(b"x" * 150, 0o644, 1, MTIME) + b"z" + tarcodec.padding(1)
    (member,) = codec_members(small + tarcodec.ZERO_BLOCK)
    assert member.raw + b"z" + tarcodec.padding(1) == small


def test_a_packed_artifact_reads_as_tarfile_reads_it(sample: Path) -> None:
    result = build_artifact(sample, PackOptions(install=False), environ={})
    with open_tar_stream(result.artifact) as stream:
        raw = stream.read()
    ours = [described(m.name, m.typeflag, m.mode, m.size, m.linkname) for m in codec_members(raw)]
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        assert ours == [tarfile_view(member) for member in archive.getmembers()]
    assert len(ours) > 5


def tarfile_bytes(fmt: int, name: str = "n" * 120, **fields: object) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        info = tarfile.TarInfo(name)
        for key, value in fields.items():
            setattr(info, key, value)
        archive.addfile(info, io.BytesIO(b"") if info.isreg() else None)
    return buffer.getvalue()


def corrupt_checksum(raw: bytes) -> bytes:
    return raw[:148] + b"0000000\0" + raw[156:]


def base256_size() -> bytes:
    block = tarcodec.file_header(b"a", 0o644, 0, MTIME)
    block = block[:124] + b"\x80" + bytes(10) + b"\x01" + block[136:]
    checksum = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return block[:148] + b"%06o\0 " % checksum + block[156:] + bytes(512) + tarcodec.ZERO_BLOCK


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (tarfile_bytes(tarfile.GNU_FORMAT), "not a POSIX ustar header"),
        (base256_size(), "base-256"),
        (corrupt_checksum(tarfile_bytes(tarfile.USTAR_FORMAT, "a")), "checksum"),
        (tarfile_bytes(tarfile.USTAR_FORMAT, "a")[:700], "ends in the middle"),
        (tarcodec.file_header(b"a", 0o644, 10, MTIME) + b"short", "ends in the middle"),
    ],
    ids=["gnu", "base-256", "checksum", "truncated header", "truncated data"],
)
def test_what_the_codec_does_not_read_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(tarcodec.UnreadableHeader, match=reason):
        codec_members(raw)


def test_global_and_sparse_pax_headers_are_refused() -> None:
    pax = tarfile.TarInfo("g")
    pax.type = tarfile.XGLTYPE
    glob = pax.tobuf(tarfile.PAX_FORMAT) + tarcodec.ZERO_BLOCK
    with pytest.raises(tarcodec.UnreadableHeader, match="record type"):
        codec_members(glob)
    sparse = tarfile.TarInfo("s")
    sparse.pax_headers = {"GNU.sparse.size": "1"}
    with pytest.raises(tarcodec.UnreadableHeader, match="sparse"):
        codec_members(sparse.tobuf(tarfile.PAX_FORMAT) + tarcodec.ZERO_BLOCK)

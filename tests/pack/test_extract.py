"""`safe_extract`: hostile archives are refused whole; nothing lands outside the target.

Every malicious case is built by hand with tarfile and tried as plain tar, tar+gzip and
tar+zstd. After a refusal the sandbox around the target must hold exactly what it held before
(no escaped file, no partial target, no temporary folder).
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from pack_support import FILES, SYMLINKS

from aether.errors import IntegrityError, IOFailure
from aether.pack import PackOptions, UnsafeArchive, build_artifact, safe_extract
from aether.pack.reader import ArchiveBomb
from aether.settings import ExpansionLimits

Member = tuple[tarfile.TarInfo, bytes | None]


def info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = 0o644
    for key, value in fields.items():
        setattr(member, key, value)
    return member


def file(name: str, data: bytes = b"x", **fields: object) -> Member:
    return info(name, size=len(data), **fields), data


def write_archive(path: Path, members: list[Member], compression: str) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in members:
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    if compression == "gzip":
        raw = gzip.compress(raw, mtime=0)
    elif compression == "zstd":
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return path


def snapshot(root: Path) -> set[str]:
    return {
        os.path.relpath(os.path.join(folder, name), root)
        for folder, dirs, files in os.walk(root)
        for name in dirs + files
    }


MALICIOUS: dict[str, tuple[Callable[[], list[Member]], str]] = {
    "absolute path": (lambda: [file("/tmp/aether-escaped.txt")], "absolute"),
    "dot-dot": (lambda: [file("ok.txt"), file("../escaped.txt")], "'..'"),
    "nested dot-dot": (lambda: [file("a/../../escaped.txt")], "'..'"),
    "absolute symlink": (
        lambda: [(info("link", tarfile.SYMTYPE, linkname="/etc"), None)],
        "absolute",
    ),
    "escaping symlink": (
        lambda: [(info("link", tarfile.SYMTYPE, linkname="../.."), None)],
        "outside",
    ),
    "symlink chain escape": (
        lambda: [
            (info("a", tarfile.SYMTYPE, linkname="."), None),
            (info("b", tarfile.SYMTYPE, linkname="a/.."), None),
        ],
        "resolves outside",
    ),
    "write through symlink": (
        lambda: [
            (info("dir", tarfile.SYMTYPE, linkname="."), None),
            file("dir/escaped.txt"),
        ],
        "parent dir is a symlink",
    ),
    "escaping hardlink": (
        lambda: [(info("hard", tarfile.LNKTYPE, linkname="../outside.txt"), None)],
        "'..'",
    ),
    "hardlink to a symlink": (
        lambda: [
            (info("link", tarfile.SYMTYPE, linkname="x"), None),
            (info("hard", tarfile.LNKTYPE, linkname="link"), None),
        ],
        "hardlink",
    ),
    "character device": (lambda: [(info("dev", tarfile.CHRTYPE), None)], "device"),
    "block device": (lambda: [(info("blk", tarfile.BLKTYPE), None)], "device"),
    "fifo": (lambda: [(info("fifo", tarfile.FIFOTYPE), None)], "FIFO"),
    "duplicate file": (lambda: [file("same.txt"), file("same.txt", b"y")], "more than once"),
    "duplicate via ./": (lambda: [file("same.txt"), file("./same.txt")], "more than once"),
    "file over a directory": (
        lambda: [(info("d", tarfile.DIRTYPE, mode=0o755), None), file("d")],
        "more than once",
    ),
}


@pytest.fixture(params=["tar", "gzip", "zstd"])
def compression(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_refused_whole(tmp_path: Path, compression: str, case: str) -> None:
    build, reason = MALICIOUS[case]
    archive = write_archive(tmp_path / "evil.tar", build(), compression)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "existing.txt").write_text("untouched")
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeArchive, match=reason) as caught:
        safe_extract(archive, sandbox / "app")
    assert caught.value.exit_code == 20
    assert snapshot(tmp_path) == before
    assert not os.path.lexists("/tmp/aether-escaped.txt")


def test_too_many_entries(tmp_path: Path, compression: str) -> None:
    members = [file(f"f{i}.txt") for i in range(11)]
    archive = write_archive(tmp_path / "many.tar", members, compression)
    with pytest.raises(UnsafeArchive, match="more than 10 entries"):
        safe_extract(archive, tmp_path / "app", max_entries=10)
    assert not (tmp_path / "app").exists()
    assert safe_extract(archive, tmp_path / "app", max_entries=11) == 11


def test_too_many_bytes(tmp_path: Path, compression: str) -> None:
    members = [file("a.bin", b"\0" * 6000), file("b.bin", b"\0" * 6000)]
    archive = write_archive(tmp_path / "bomb.tar", members, compression)
    with pytest.raises(ArchiveBomb, match="decompression bomb.*AETHER_MAX_EXPANDED_BYTES"):
        safe_extract(archive, tmp_path / "app", limits=ExpansionLimits(10_000, max_ratio=0))
    assert snapshot(tmp_path) == {"bomb.tar"}


def test_a_huge_stream_stops_at_the_cap(tmp_path: Path) -> None:
    # A zstd bomb hidden in a pax header (no file data at all): the cap on the uncompressed
    # stream trips before the header is held in memory.
    member = info("small.txt", size=0)
    member.pax_headers = {"comment": "A" * (50 * 2**20)}
    raw = member.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 1024
    archive = tmp_path / "bomb.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(raw))
    with pytest.raises(ArchiveBomb, match="a metadata record of 52,428,8.. bytes"):
        safe_extract(archive, tmp_path / "app", limits=ExpansionLimits(2**30), max_entries=10)
    assert snapshot(tmp_path) == {"bomb.tar.zst"}


def test_garbage_is_an_integrity_error(tmp_path: Path) -> None:
    archive = tmp_path / "junk.tar.zst"
    archive.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(200))
    with pytest.raises(IntegrityError):
        safe_extract(archive, tmp_path / "app")
    assert snapshot(tmp_path) == {"junk.tar.zst"}


def test_setuid_setgid_and_sticky_bits_are_stripped(tmp_path: Path, compression: str) -> None:
    members = [
        file("suid", mode=0o4755),
        file("sgid", mode=0o2755),
        (info("sticky", tarfile.DIRTYPE, mode=0o1777), None),
    ]
    archive = write_archive(tmp_path / "bits.tar", members, compression)
    safe_extract(archive, tmp_path / "app")
    modes = {
        name: stat.S_IMODE(os.lstat(tmp_path / "app" / name).st_mode)
        for name in members_names(members)
    }
    assert modes == {"suid": 0o755, "sgid": 0o755, "sticky": 0o777}


def members_names(members: list[Member]) -> list[str]:
    return [member.name for member, _ in members]


def test_safe_links_and_implicit_folders_extract(tmp_path: Path, compression: str) -> None:
    members = [
        file("deep/er/file.txt", b"content"),
        (info("deep/link", tarfile.SYMTYPE, linkname="er/file.txt"), None),
        (info("deep/er/hard", tarfile.LNKTYPE, linkname="deep/er/file.txt"), None),
        (info("./", tarfile.DIRTYPE, mode=0o755), None),
    ]
    archive = write_archive(tmp_path / "ok.tar", members, compression)
    assert safe_extract(archive, tmp_path / "app") == 4
    app = tmp_path / "app"
    assert (app / "deep" / "link").read_bytes() == b"content"
    assert os.readlink(app / "deep" / "link") == "er/file.txt"
    assert (app / "deep" / "er" / "hard").read_bytes() == b"content"


def test_a_packed_artifact_round_trips(sample: Path, tmp_path: Path) -> None:
    for compression in ("zstd", "gzip"):
        result = build_artifact(
            sample, PackOptions(install=False, compression=compression), environ={}
        )
        dest = tmp_path / compression / "release"
        safe_extract(result.artifact, dest)
        for rel, text in FILES.items():
            assert (dest / rel).read_text(encoding="utf-8") == text
        for rel, target in SYMLINKS.items():
            assert os.readlink(dest / rel) == target
        assert os.access(dest / "bin" / "start.sh", os.X_OK)
        assert stat.S_IMODE((dest / "index.js").stat().st_mode) == 0o644
        assert (dest / "docs").is_dir()


def test_the_target_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.tar", [file("one.txt", b"1")], "zstd")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("keep")
    with pytest.raises(IOFailure, match="not empty"):
        safe_extract(archive, occupied)
    assert snapshot(occupied) == {"keep.txt"}
    assert safe_extract(archive, occupied, replace=True) == 1
    assert snapshot(occupied) == {"one.txt"}
    assert snapshot(tmp_path) == {"a.tar", "occupied", "occupied/one.txt"}
    empty = tmp_path / "empty"
    empty.mkdir()
    safe_extract(archive, empty)
    assert (empty / "one.txt").read_bytes() == b"1"


def zeros_bomb(path: Path, size: int) -> Path:
    """One file of ``size`` zero bytes, zstd-compressed (a few KB per GB), written in a stream."""
    member = info("zeros.bin", size=size)
    with path.open("wb") as out, zstandard.ZstdCompressor().stream_writer(out) as sink:
        sink.write(member.tobuf(format=tarfile.PAX_FORMAT))
        block = bytes(2**20)
        for _ in range(size // len(block)):
            sink.write(block)
        sink.write(b"\0" * 1024)
    return path


def test_a_bomb_is_refused_by_its_ratio_before_expanding(tmp_path: Path) -> None:
    archive = zeros_bomb(tmp_path / "bomb.tar.zst", 256 * 2**20)
    assert archive.stat().st_size < 64 * 1024
    with pytest.raises(ArchiveBomb, match="more than 200 times its compressed size") as caught:
        safe_extract(archive, tmp_path / "app")
    assert "AETHER_MAX_EXPANSION_RATIO" in caught.value.message
    assert snapshot(tmp_path) == {"bomb.tar.zst"}  # nothing half-written is left


def test_the_ratio_spares_small_archives_and_can_be_switched_off(tmp_path: Path) -> None:
    archive = zeros_bomb(tmp_path / "zeros.tar.zst", 8 * 2**20)  # under the 32 MiB floor
    assert safe_extract(archive, tmp_path / "small") == 1
    big = zeros_bomb(tmp_path / "big.tar.zst", 40 * 2**20)
    assert safe_extract(big, tmp_path / "big", limits=ExpansionLimits(max_ratio=0)) == 1
    assert (tmp_path / "big" / "zeros.bin").stat().st_size == 40 * 2**20


@pytest.mark.parametrize("target", ["a\x00b", ""])
def test_a_symlink_target_with_a_nul_byte_or_nothing_is_refused(
    tmp_path: Path, target: str
) -> None:
    link = info("link", tarfile.SYMTYPE)
    link.pax_headers = {"linkpath": target}  # a pax record carries what a ustar field cannot
    archive = write_archive(tmp_path / "nul.tar", [(link, None)], "zstd")
    with pytest.raises(UnsafeArchive, match="empty target or one holding a NUL byte"):
        safe_extract(archive, tmp_path / "app")
    assert snapshot(tmp_path) == {"nul.tar"}

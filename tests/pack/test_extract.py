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
    with pytest.raises(UnsafeArchive, match="more than 10000 bytes"):
        safe_extract(archive, tmp_path / "app", max_bytes=10_000)
    assert snapshot(tmp_path) == {"bomb.tar"}


def test_a_huge_stream_stops_at_the_cap(tmp_path: Path) -> None:
    # A zstd bomb hidden in a pax header (no file data at all): the cap on the uncompressed
    # stream trips before the header is held in memory.
    member = info("small.txt", size=0)
    member.pax_headers = {"comment": "A" * (50 * 2**20)}
    raw = member.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 1024
    archive = tmp_path / "bomb.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(raw))
    with pytest.raises(IntegrityError, match="decompression bomb"):
        safe_extract(archive, tmp_path / "app", max_bytes=2**20, max_entries=10)
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

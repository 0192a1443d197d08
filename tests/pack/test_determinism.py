"""Same inputs, same bytes: copies with other paths, mtimes, umask and owner pack alike."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import blake3
import pytest
import zstandard
from pack_support import FILES, LONG_FILE, SYMLINKS, all_paths, build_sample

from aether.pack import PackOptions, build_artifact

# The format is deliberate: a change here means every artifact changes identity. Update these
# only together with a note on why the bytes moved. (The gzip bytes also depend on zlib's
# deflate: a build against zlib-ng would differ; tar_sha256 would not.)
GOLDEN = {
    "zstd": "64f072d57ed76169bb947cb6103035dd13c2ca8d053c7255e6c85713d7a0b13b",
    "gzip": "61e7619ae2d9a43812c376b4d472ee2c6d45f98da9e516dd1284160c17939be4",
}
GOLDEN_TAR_SHA256 = "b68def0ae3d909e17c18a08415e2f49f45d079d9818ce03f0c662dcb0209680e"


def pack(project: Path, out: Path, compression: str = "zstd", **options: object):
    return build_artifact(
        project,
        PackOptions(out=out, compression=compression, install=False, **options),  # type: ignore[arg-type]
        environ={},
    )


def scramble(root: Path, *, owner: int) -> None:
    """Other mtimes and another owner on everything, symlinks included."""
    for index, path in enumerate(sorted(all_paths(root))):
        os.lchown(path, owner, owner)
        stamp = 1_000_000_000 + index * 7919
        os.utime(path, (stamp, stamp), follow_symlinks=False)


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_golden_digest(sample: Path, tmp_path: Path, compression: str, reader: str) -> None:
    result = pack(sample, tmp_path / "out", compression)
    assert result.digest == GOLDEN[compression]


def test_tar_sha256_is_the_same_for_both_compressors(sample: Path, tmp_path: Path) -> None:
    zstd = pack(sample, tmp_path / "z", "zstd")
    gz = pack(sample, tmp_path / "g", "gzip")
    tar_hashes = {json.loads(r.manifest.read_text())["tar_sha256"] for r in (zstd, gz)}
    assert tar_hashes == {GOLDEN_TAR_SHA256}


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_copy_elsewhere_with_other_mtimes_umask_and_owner_packs_the_same(
    sample: Path, tmp_path: Path, compression: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing the owner needs root")
    previous = os.umask(0o077)
    try:
        other = build_sample(tmp_path / "elsewhere" / "deeper", exec_mode=0o700, file_mode=0o600)
    finally:
        os.umask(previous)
    scramble(other, owner=4242)
    assert (other / "docs").stat().st_mode & 0o777 == 0o700
    first = pack(sample, tmp_path / "one", compression)
    second = pack(other, tmp_path / "two", compression)
    assert first.digest == second.digest
    assert first.artifact.read_bytes() == second.artifact.read_bytes()
    assert first.manifest.read_bytes() == second.manifest.read_bytes()


def read_members(artifact: Path) -> list[tarfile.TarInfo]:
    with open(artifact, "rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            return list(archive)


def test_entries_are_sorted_with_normalised_headers(sample: Path, tmp_path: Path) -> None:
    members = read_members(pack(sample, tmp_path / "out").artifact)
    names = [m.name + ("/" if m.isdir() else "") for m in members]
    assert names == sorted(names, key=lambda name: name.encode())
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 0
        assert member.pax_headers.keys() <= {"path", "linkpath"}
    modes = {m.name: m.mode for m in members}
    assert modes["bin/start.sh"] == 0o755
    assert modes["node_modules/left-pad/cli.js"] == 0o755
    assert modes["index.js"] == 0o644
    assert modes["docs"] == 0o755
    kinds = {m.name: m.type for m in members}
    assert kinds["docs"] == tarfile.DIRTYPE
    assert {m.name for m in members if m.isreg()} == set(FILES) - {".aetherignore"}
    links = {m.name: m.linkname for m in members if m.issym()}
    assert links == SYMLINKS
    long_member = next(m for m in members if m.name == LONG_FILE)
    assert long_member.pax_headers == {"path": LONG_FILE}
    assert ".aether" not in {name.split("/")[0] for name in names}


def test_gzip_header_has_no_mtime_and_no_name(sample: Path, tmp_path: Path) -> None:
    artifact = pack(sample, tmp_path / "out", "gzip").artifact
    head = artifact.read_bytes()[:10]
    assert head[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME/FCOMMENT/FEXTRA flags
    assert head[4:8] == b"\0\0\0\0"  # mtime 0
    with gzip.open(artifact) as handle:
        with tarfile.open(fileobj=handle, mode="r|") as archive:
            assert "index.js" in [m.name for m in archive]


def test_source_date_epoch_sets_every_mtime(sample: Path, tmp_path: Path) -> None:
    result = build_artifact(
        sample,
        PackOptions(out=tmp_path / "out", install=False),
        environ={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert {m.mtime for m in read_members(result.artifact)} == {1700000000}
    assert result.digest != GOLDEN["zstd"]


def test_hardlinks_are_stored_as_regular_files(sample: Path, tmp_path: Path) -> None:
    os.link(sample / "index.js", sample / "index-copy.js")
    members = {m.name: m for m in read_members(pack(sample, tmp_path / "out").artifact)}
    assert members["index-copy.js"].isreg()
    assert members["index-copy.js"].size == members["index.js"].size


def test_large_files_are_streamed_and_hashed(sample: Path, tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)
    (sample / "big.bin").write_bytes(big)
    result = pack(sample, tmp_path / "out")
    listed = {f["path"]: f for f in json.loads(result.manifest.read_text())["files"]}
    assert listed["big.bin"]["size"] == len(big)
    assert listed["big.bin"]["blake3"] == blake3.blake3(big).hexdigest()
    assert result.bytes_in == sum(f["size"] for f in listed.values())


def test_gnu_tar_extracts_the_gzip_artifact(sample: Path, tmp_path: Path) -> None:
    tar = shutil.which("tar")
    if tar is None:
        pytest.skip("no tar on PATH")
    artifact = pack(sample, tmp_path / "out", "gzip").artifact
    target = tmp_path / "unpacked"
    target.mkdir()
    subprocess.run([tar, "-xzf", str(artifact), "-C", str(target)], check=True)
    for rel, text in FILES.items():
        assert (target / rel).read_text(encoding="utf-8") == text
    assert (
        os.readlink(target / "node_modules/.bin/left-pad") == SYMLINKS["node_modules/.bin/left-pad"]
    )

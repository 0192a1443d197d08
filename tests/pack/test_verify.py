"""`verify_artifact`: digest, every entry against the manifest, tar_sha256, signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aether.errors import IntegrityError, IOFailure, UsageError
from aether.pack import PackOptions, build_artifact, generate_keypair, verify_artifact
from aether.pack.signing import sign_digest


@pytest.fixture(params=["zstd", "gzip"])
def packed(request: pytest.FixtureRequest, sample: Path):
    return build_artifact(
        sample, PackOptions(install=False, sbom=False, compression=request.param), environ={}
    )


def edit_manifest(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_fresh_artifact_verifies(packed) -> None:
    report = verify_artifact(packed.artifact)
    assert report.digest == packed.digest
    assert report.files == packed.files
    assert report.symlinks == 1
    assert report.signature_verified is None


def test_a_changed_file_hash_is_named(packed) -> None:
    def change(data: dict) -> None:
        entry = next(f for f in data["files"] if f["path"] == "index.js")
        entry["blake3"] = "0" * 64

    edit_manifest(packed.manifest, change)
    with pytest.raises(IntegrityError, match="entry index.js differs") as caught:
        verify_artifact(packed.artifact)
    assert caught.value.exit_code == 20


def test_a_changed_mode_is_named(packed) -> None:
    def change(data: dict) -> None:
        next(f for f in data["files"] if f["path"] == "bin/start.sh")["mode"] = "0644"

    edit_manifest(packed.manifest, change)
    with pytest.raises(IntegrityError, match="bin/start.sh"):
        verify_artifact(packed.artifact)


def test_missing_and_extra_entries_are_named(packed) -> None:
    edit_manifest(packed.manifest, lambda d: d["files"].append(dict(d["files"][0], path="zz.js")))
    with pytest.raises(IntegrityError, match="zz.js is in the manifest but not in the archive"):
        verify_artifact(packed.artifact)
    edit_manifest(packed.manifest, lambda d: d["files"].pop(0) and d["files"].pop())
    with pytest.raises(IntegrityError, match="in the archive but not in the manifest"):
        verify_artifact(packed.artifact)


def test_changed_artifact_bytes_fail_the_digest(packed) -> None:
    data = bytearray(packed.artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    packed.artifact.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="digest mismatch"):
        verify_artifact(packed.artifact)


def test_a_manifest_for_other_bytes_with_a_matching_digest_still_fails_on_tar_sha256(
    packed,
) -> None:
    edit_manifest(packed.manifest, lambda d: d.update(tar_sha256="1" * 64))
    with pytest.raises(IntegrityError, match="tar_sha256 mismatch"):
        verify_artifact(packed.artifact)


def test_signature_checks(packed) -> None:
    seed, public = generate_keypair()
    signature = packed.artifact.with_name(packed.artifact.name + ".sig")
    with pytest.raises(IntegrityError, match="not signed"):
        verify_artifact(packed.artifact, public_key_hex=public)
    signature.write_text(sign_digest(seed, packed.digest))
    assert verify_artifact(packed.artifact, public_key_hex=public).signature_verified is True
    with pytest.raises(IntegrityError, match="signature mismatch"):
        verify_artifact(packed.artifact, public_key_hex=generate_keypair()[1])
    with pytest.raises(UsageError):
        verify_artifact(packed.artifact, public_key_hex="xyz")


def test_missing_files(tmp_path: Path, packed) -> None:
    with pytest.raises(IOFailure):
        verify_artifact(tmp_path / "nothing.tar.zst")
    with pytest.raises(IOFailure, match="no manifest"):
        verify_artifact(packed.artifact, manifest=tmp_path / "none.json")

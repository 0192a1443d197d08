"""Preparing a release folder: nothing is extracted unless the bytes hash to the digest and,
when required, the signature verifies against an active key of the app."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from worker_support import Recorder

from aether.blobs.local import LocalBlobStore
from aether.pack import PackOptions, build_artifact
from aether.pack.signing import generate_keypair
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.releasedir import check_signature, is_complete, prepare

PLAIN_APP = Path(__file__).parent / "fixtures" / "plain-app"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    seed, public = generate_keypair()
    out = tmp_path_factory.mktemp("signed")
    packed = build_artifact(
        PLAIN_APP, PackOptions(out=out, install=False, sbom=False, signing_key=seed)
    )
    return packed, public


def release_for(packed: Any, **fields: Any) -> Release:
    return Release(
        app_name="hello",
        deployment_id="00000000-0000-0000-0000-000000000001",
        digest=packed.digest,
        storage_key=f"artifacts/hello/{packed.digest}/app.tar.zst",
        compression="zstd",
        start_command=None,
        **fields,
    )


def test_signature_rules(signed: tuple[Any, str]) -> None:
    packed, public = signed
    _, other = generate_keypair()
    good = release_for(packed, signature=packed.signature_hex, public_keys=(other, public))
    assert check_signature(good, required=True).startswith("signature ok")
    assert check_signature(release_for(packed), required=False) == "unsigned"
    with pytest.raises(Fatal, match="no signature"):
        check_signature(release_for(packed, public_keys=(public,)), required=True)
    with pytest.raises(Fatal, match="no active public key"):
        check_signature(release_for(packed, signature=packed.signature_hex), required=True)
    wrong_key = release_for(packed, signature=packed.signature_hex, public_keys=(other,))
    with pytest.raises(Fatal, match="does not verify"):
        check_signature(wrong_key, required=False)


async def test_verified_release_is_extracted_with_its_marker(
    signed: tuple[Any, str], blobs: LocalBlobStore, tmp_path: Path
) -> None:
    packed, _ = signed
    release = release_for(packed)
    with packed.artifact.open("rb") as source:
        await blobs.put_file(release.storage_key, source, sha256=packed.digest)
    record = Recorder()
    folder = await prepare(release, tmp_path / "apps", blobs, record, require_signature=False)
    assert (folder / "server.js").is_file() and is_complete(folder, packed.digest)
    assert record.phases() == ["fetching", "verifying", "extracting", "extracted"]
    again = Recorder()
    assert (
        await prepare(release, tmp_path / "apps", blobs, again, require_signature=False) == folder
    )
    assert again.events == []  # reused, not fetched again


async def test_bytes_that_do_not_match_the_digest_are_never_extracted(
    signed: tuple[Any, str], blobs: LocalBlobStore, tmp_path: Path
) -> None:
    packed, _ = signed
    forged = dataclasses.replace(release_for(packed), digest="ab" * 32)
    with packed.artifact.open("rb") as source:  # the stored object is not what the row says
        await blobs.put_file(forged.storage_key, source, sha256=packed.digest)
    with pytest.raises(Fatal, match="digest mismatch"):
        await prepare(forged, tmp_path / "apps", blobs, Recorder(), require_signature=False)
    assert not (tmp_path / "apps" / "hello" / forged.deployment_id).exists()
    assert list((tmp_path / "apps" / "hello").iterdir()) == []


async def test_required_signature_missing_fails_before_extracting(
    signed: tuple[Any, str], blobs: LocalBlobStore, tmp_path: Path
) -> None:
    packed, _ = signed
    release = release_for(packed)
    with packed.artifact.open("rb") as source:
        await blobs.put_file(release.storage_key, source, sha256=packed.digest)
    with pytest.raises(Fatal, match="AETHER_REQUIRE_SIGNATURE"):
        await prepare(release, tmp_path / "apps", blobs, Recorder(), require_signature=True)
    assert not (tmp_path / "apps" / "hello" / release.deployment_id).exists()

"""A layered artifact's release folder: manifest and layers verified, the deps layer
extracted once per digest and linked into every release that uses it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from layered_support import make_project, pack, store
from worker_support import Recorder

from aether.blobs.local import LocalBlobStore
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.layers import release_layer
from aether.worker.runtimes.releasedir import is_complete, prepare
from plugins.older_artifacts import as_older_pack


async def test_layers_compose_and_the_deps_layer_is_shared(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    apps = tmp_path / "apps"
    first_pack = pack(make_project(tmp_path / "v1", "console.log(1)\n"), tmp_path / "o1")
    second_pack = pack(make_project(tmp_path / "v2", "console.log(2)\n"), tmp_path / "o2")
    assert first_pack.layers[0]["digest"] == second_pack.layers[0]["digest"]
    first = await store(blobs, first_pack, "00000000-0000-0000-0000-000000000001")
    second = await store(blobs, second_pack, "00000000-0000-0000-0000-000000000002")
    record = Recorder()
    one = await prepare(first, apps, blobs, record, require_signature=False)
    assert (one / "server.js").read_text() == "console.log(1)\n"
    assert (one / "node_modules").is_symlink()
    assert (one / "node_modules" / "left-pad" / "index.js").is_file()
    assert is_complete(one, first.digest)
    assert "node_modules extracted" in record.events[-1][1]
    again = Recorder()
    two = await prepare(second, apps, blobs, again, require_signature=False)
    assert (two / "server.js").read_text() == "console.log(2)\n"
    assert release_layer(one) == release_layer(two) == first_pack.layers[0]["digest"]
    assert "node_modules reused" in again.events[-1][1]
    # the lockfiles come with the deps layer, copied to each release's root
    for folder in (one, two):
        lock = folder / "package-lock.json"
        assert lock.is_file() and not lock.is_symlink()
        assert lock.read_bytes() == (tmp_path / "v1" / "package-lock.json").read_bytes()
    fetched = [message for phase, message in again.events if phase == "fetching"]
    assert not any("deps layer" in message for message in fetched)


async def test_an_artifact_recording_tar_sha256_composes(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    """Earlier builds recorded each layer's tar_sha256 in the manifest: still deployed."""
    packed = as_older_pack(pack(make_project(tmp_path / "v1", "console.log(1)\n"), tmp_path / "o"))
    assert b'"tar_sha256":' in packed.artifact.read_bytes()
    release = await store(blobs, packed, "00000000-0000-0000-0000-000000000001")
    folder = await prepare(release, tmp_path / "apps", blobs, Recorder(), require_signature=False)
    assert (folder / "server.js").read_text() == "console.log(1)\n"
    assert (folder / "node_modules" / "left-pad" / "index.js").is_file()
    assert is_complete(folder, packed.digest)


async def test_a_tampered_layer_is_never_extracted(blobs: LocalBlobStore, tmp_path: Path) -> None:
    packed = pack(make_project(tmp_path / "v1", "console.log(1)\n"), tmp_path / "o1")
    release = await store(blobs, packed, "00000000-0000-0000-0000-000000000001")
    app = release.layers[1]
    other = pack(make_project(tmp_path / "v2", "console.log(2)\n"), tmp_path / "o2")
    with open(other.layers[1]["path"], "rb") as handle:  # other bytes under the app layer's key
        await blobs.put_file(app.storage_key or "", handle, sha256=other.layers[1]["digest"])
    with pytest.raises(Fatal, match="digest mismatch"):
        await prepare(release, tmp_path / "apps", blobs, Recorder(), require_signature=False)
    assert not (tmp_path / "apps" / "hello" / release.deployment_id).exists()


async def test_a_manifest_that_is_not_the_digest_is_refused(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    packed = pack(make_project(tmp_path / "v1", "console.log(1)\n"), tmp_path / "o1")
    release = await store(blobs, packed, "00000000-0000-0000-0000-000000000001")
    forged = dataclasses.replace(release, digest="ab" * 32)
    with pytest.raises(Fatal, match="digest mismatch"):
        await prepare(forged, tmp_path / "apps", blobs, Recorder(), require_signature=False)


async def test_a_layer_no_longer_stored_fails_clearly(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    packed = pack(make_project(tmp_path / "v1", "console.log(1)\n"), tmp_path / "o1")
    release = await store(blobs, packed, "00000000-0000-0000-0000-000000000001")
    gone = dataclasses.replace(release.layers[0], storage_key=None)
    release = dataclasses.replace(release, layers=(gone, release.layers[1]))
    with pytest.raises(Fatal, match="no longer stored"):
        await prepare(release, tmp_path / "apps", blobs, Recorder(), require_signature=False)


async def test_a_redeploy_finds_a_tampered_cached_deps_layer_and_links_no_tampered_app_layer(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    """A code-only redeploy: a tampered cached copy is found (and made again), and a
    tampered app layer links nothing."""
    apps = tmp_path / "apps"
    packs = [
        pack(make_project(tmp_path / f"v{n}", f"console.log({n})\n"), tmp_path / f"o{n}")
        for n in (1, 2, 3)
    ]
    releases = [await store(blobs, p, f"00000000-0000-0000-0000-00000000000{n}") for n, p in enumerate(packs)]  # fmt: skip
    first = await prepare(releases[0], apps, blobs, Recorder(), require_signature=False)
    (first / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 2;\n")
    again = Recorder()
    second = await prepare(releases[1], apps, blobs, again, require_signature=False)
    assert "node_modules extracted again (the cached copy was tampered with" in again.events[-1][1]
    assert (
        second / "node_modules" / "left-pad" / "index.js"
    ).read_text() == "module.exports = 1;\n"
    assert (second / "server.js").read_text() == "console.log(2)\n"
    app = releases[2].layers[1]
    with open(packs[0].layers[1]["path"], "rb") as handle:  # other bytes under its app layer's key
        await blobs.put_file(app.storage_key or "", handle, sha256=packs[0].layers[1]["digest"])
    with pytest.raises(Fatal, match="digest mismatch"):
        await prepare(releases[2], apps, blobs, Recorder(), require_signature=False)
    assert not (apps / "hello" / releases[2].deployment_id).exists()

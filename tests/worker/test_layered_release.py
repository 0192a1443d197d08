"""A layered artifact's release folder: manifest and layers verified, the deps layer
extracted once per digest and linked into every release that uses it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from worker_support import Recorder

from aether.blobs.local import LocalBlobStore
from aether.blobs.storage_keys import manifest_key, storage_key
from aether.pack import PackOptions, build_artifact
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.base import LayerSource, Release
from aether.worker.runtimes.layers import release_layer
from aether.worker.runtimes.releasedir import is_complete, prepare

PLAIN_APP = Path(__file__).parent / "fixtures" / "plain-app"


def make_project(root: Path, text: str) -> Path:
    root.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        (root / name).write_bytes((PLAIN_APP / name).read_bytes())
    (root / "server.js").write_text(text, encoding="utf-8")
    module = root / "node_modules" / "left-pad"
    module.mkdir(parents=True)
    (module / "index.js").write_text("module.exports = 1;\n", encoding="utf-8")
    (root / "node_modules" / ".bin").mkdir()
    os.symlink("../left-pad/index.js", root / "node_modules" / ".bin" / "left-pad")
    return root


def pack(root: Path, out: Path) -> Any:
    options = PackOptions(out=out, install=False, sbom=False, layered=True)
    return build_artifact(root, options, environ={})


@pytest.fixture
async def blobs(tmp_path: Path) -> AsyncIterator[LocalBlobStore]:
    store = LocalBlobStore(tmp_path / "blobs", public_url="http://127.0.0.1:1")
    await store.open()
    yield store
    await store.close()


async def store(blobs: LocalBlobStore, packed: Any, deployment: str) -> Release:
    """Put the manifest and layers where a server would, and the release naming them."""
    sources = []
    for layer in packed.layers:
        key = storage_key("hello", layer["digest"], "zstd")
        with open(layer["path"], "rb") as handle:
            await blobs.put_file(key, handle, sha256=layer["digest"])
        sources.append(LayerSource(layer["name"], layer["digest"], key, "zstd"))
    key = manifest_key("hello", packed.digest)
    with packed.artifact.open("rb") as handle:
        await blobs.put_file(key, handle, sha256=packed.digest)
    return Release(
        app_name="hello",
        deployment_id=deployment,
        digest=packed.digest,
        storage_key=key,
        compression="zstd",
        start_command=None,
        layers=tuple(sources),
    )


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
    fetched = [message for phase, message in again.events if phase == "fetching"]
    assert not any("deps layer" in message for message in fetched)


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

"""Test support for layered releases: a project with a dependency, packed as format 2, its
manifest and layers put where a server would put them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aether.blobs.local import LocalBlobStore
from aether.blobs.storage_keys import manifest_key, storage_key
from aether.pack import PackOptions, build_artifact
from aether.worker.runtimes.base import LayerSource, Release

PLAIN_APP = Path(__file__).parent / "fixtures" / "plain-app"


def make_project(root: Path, text: str, source: Path | None = None) -> Path:
    root.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        (root / name).write_bytes((PLAIN_APP / name).read_bytes())
    (root / "server.js").write_text(text, encoding="utf-8")
    if source is not None:  # another app's own files (the dependencies stay the same)
        for item in source.iterdir():
            (root / item.name).write_bytes(item.read_bytes())
    module = root / "node_modules" / "left-pad"
    module.mkdir(parents=True)
    (module / "index.js").write_text("module.exports = 1;\n", encoding="utf-8")
    (root / "node_modules" / ".bin").mkdir()
    os.symlink("../left-pad/index.js", root / "node_modules" / ".bin" / "left-pad")
    return root


def pack(root: Path, out: Path) -> Any:
    options = PackOptions(out=out, install=False, sbom=False, layered=True)
    return build_artifact(root, options, environ={})


async def store(blobs: LocalBlobStore, packed: Any, deployment: str, app: str = "hello") -> Release:
    """Put the manifest and layers where a server would, and the release naming them."""
    sources = []
    for layer in packed.layers:
        key = storage_key(app, layer["digest"], "zstd")
        with open(layer["path"], "rb") as handle:
            await blobs.put_file(key, handle, sha256=layer["digest"])
        sources.append(LayerSource(layer["name"], layer["digest"], key, "zstd"))
    key = manifest_key(app, packed.digest)
    with packed.artifact.open("rb") as handle:
        await blobs.put_file(key, handle, sha256=packed.digest)
    return Release(
        app_name=app,
        deployment_id=deployment,
        digest=packed.digest,
        storage_key=key,
        compression="zstd",
        start_command=None,
        layers=tuple(sources),
    )

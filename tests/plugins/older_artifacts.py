"""Test support: a layered artifact as earlier builds wrote it, recording ``tar_sha256``.

They wrote, per layer, the sha256 of the uncompressed tar into the layer's file
index and into its reference in the artifact manifest. The layers' bytes are the same; the
indexes, the manifest and so the artifact's digest differ. Stores still hold such artifacts,
so every reader must keep accepting (and checking) them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from aether.pack.artifact_manifest import artifact_digest, parse_artifact_manifest
from aether.pack.layout import manifest_path
from aether.pack.manifest import write_manifest
from aether.pack.reader import open_tar_stream


def tar_sha256_of(layer: Path) -> str:
    """The sha256 of the layer's uncompressed tar stream."""
    with open_tar_stream(layer, hashed=True) as stream:
        stream.drain()
        return stream.hexdigest()


def record_tar_sha256(artifact: Path, *, wrong: bool = False) -> str:
    """Rewrite the manifest at ``artifact`` (and the indexes in ``layers/`` beside it) the way
    an earlier build wrote them; returns the new artifact digest. ``wrong``: record another
    hash than the tar's (consistently, as a packer with a bug would)."""
    from aether.pack.layered import layer_file

    manifest = parse_artifact_manifest(artifact.read_bytes())
    layers = []
    for layer in manifest.layers:
        path = layer_file(artifact.parent, layer.digest, layer.compression)
        tar_sha256 = "1" * 64 if wrong else tar_sha256_of(path)
        index = manifest_path(path)
        data = json.loads(index.read_text(encoding="utf-8"))
        index_sha256 = write_manifest(index, {**data, "tar_sha256": tar_sha256})
        layers.append(dataclasses.replace(layer, tar_sha256=tar_sha256, index_sha256=index_sha256))
    raw = dataclasses.replace(manifest, layers=tuple(layers)).encode()
    artifact.write_bytes(raw)
    return artifact_digest(raw)


def as_older_pack(packed: Any) -> Any:
    """A ``PackResult`` of a layered pack, rewritten by ``record_tar_sha256``."""
    digest = record_tar_sha256(packed.artifact)
    layers = parse_artifact_manifest(packed.artifact.read_bytes()).layers
    listed = tuple(
        {**item, **ref.as_json()} for item, ref in zip(packed.layers, layers, strict=True)
    )
    size = sum(ref.size for ref in layers) + packed.artifact.stat().st_size
    return dataclasses.replace(packed, digest=digest, layers=listed, size_bytes=size)

"""The artifact manifest of format 2: a layered artifact's identity.

An artifact of format 2 is a list of layers (each one deterministic tar archive, compressed,
stored and proven by its own sha256) named by one *artifact manifest*: canonical JSON (keys
sorted, no insignificant white space, UTF-8, integers only). The artifact's digest is the
sha256 of those exact bytes, and the Ed25519 signature signs that digest. The client, the
server, the worker, ``aether fetch`` and ``aether verify`` all read a manifest through
:func:`parse_artifact_manifest`, which refuses anything that is not canonical, so one artifact
has exactly one byte form. ``docs/artifact-format.md`` describes the format for other tools.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from aether.errors import IntegrityError

FORMAT = "aether-artifact/2"
DEPS = "deps"  # the installed node_modules
APP = "app"  # everything else
LAYER_NAMES = (DEPS, APP)
# The name the server gives the SBOM among the objects an artifact names (not a layer: it is
# never extracted; it is stored, shared and kept like one).
SBOM = "sbom"
MEDIA_TYPES = {
    "zstd": "application/vnd.aether.layer.v1.tar+zstd",
    "gzip": "application/vnd.aether.layer.v1.tar+gzip",
}
# A layer field that layers packed by older versions carry and new ones leave out: the digest
# pins the compressed bytes, decompression is deterministic and the file index pins every
# member, so a hash of the uncompressed stream adds no integrity and cost a pass over it.
# Read, kept and checked where present; never written.
TAR_SHA256 = "tar_sha256"
# What a reader of this version reads (GET /config's artifact_manifest_revision): 1, every
# layer records tar_sha256; 2, a layer may leave it out, as this version writes them. A
# client writes layered artifacts only for a server at this revision or later.
MANIFEST_REVISION = 2
MAX_MANIFEST_BYTES = 64 * 1024  # a manifest names a few layers; anything bigger is not one
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, kw_only=True)
class LayerRef:
    """One layer as the artifact manifest names it (fields by name: one is optional)."""

    name: str
    digest: str  # sha256 of the compressed layer file
    size: int  # its bytes
    media_type: str
    index_sha256: str  # sha256 of the layer's file index (path, size, mode, blake3 per file)
    files: int
    bytes: int  # the files' total size, uncompressed
    # sha256 of the uncompressed tar: recorded only by older versions (see TAR_SHA256).
    tar_sha256: str | None = None

    @property
    def compression(self) -> str:
        return "gzip" if self.media_type.endswith("+gzip") else "zstd"

    def as_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "digest": self.digest,
            "size": self.size,
            "media_type": self.media_type,
            "index_sha256": self.index_sha256,
            "files": self.files,
            "bytes": self.bytes,
        }
        if self.tar_sha256 is not None:
            data[TAR_SHA256] = self.tar_sha256
        return data


@dataclass(frozen=True)
class ArtifactManifest:
    layers: tuple[LayerRef, ...]
    source_date_epoch: int
    node_major: int | None = None
    sbom_sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "layers": [layer.as_json() for layer in self.layers],
            "node_major": self.node_major,
            "sbom_sha256": self.sbom_sha256,
            "source_date_epoch": self.source_date_epoch,
        }

    def encode(self) -> bytes:
        return canonical_bytes(self.as_json())

    def layer(self, name: str) -> LayerRef | None:
        return next((layer for layer in self.layers if layer.name == name), None)


def canonical_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def artifact_digest(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()


def looks_like_manifest(head: bytes) -> bool:
    """Cheap sniff: the first bytes of a canonical artifact manifest (its first key is
    ``format``), never those of a compressed archive."""
    return head.startswith(b'{"format":"aether-artifact/')


def parse_artifact_manifest(raw: bytes) -> ArtifactManifest:
    """The manifest in ``raw``; IntegrityError unless it is a canonical format-2 manifest."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise IntegrityError(f"an artifact manifest is at most {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntegrityError(f"the artifact manifest is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntegrityError(f"not an artifact manifest of format {FORMAT}")
    if canonical_bytes(data) != raw:
        raise IntegrityError(
            "the artifact manifest is not in canonical form (sorted keys, compact)"
        )
    try:
        manifest = _from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"the artifact manifest is malformed: {exc}") from exc
    if manifest.as_json() != data:
        raise IntegrityError("the artifact manifest has fields this version does not know")
    return manifest


def _from_json(data: dict[str, Any]) -> ArtifactManifest:
    layers = tuple(_layer(item) for item in data["layers"])
    names = [layer.name for layer in layers]
    if APP not in names or len(set(names)) != len(names):
        raise ValueError("layers must name an app layer and no layer twice")
    if names != sorted(names, key=LAYER_NAMES.index):
        raise ValueError("layers must be listed deps first, then app")
    epoch = data["source_date_epoch"]
    node_major = data["node_major"]
    sbom = data["sbom_sha256"]
    if not _is_count(epoch) or not (node_major is None or _is_count(node_major)):
        raise ValueError("source_date_epoch and node_major are whole numbers")
    if sbom is not None and not _is_hex(sbom):
        raise ValueError("sbom_sha256 is 64 lowercase hex characters or null")
    return ArtifactManifest(layers, epoch, node_major, sbom)


def _layer(item: Any) -> LayerRef:
    if not isinstance(item, dict):
        raise TypeError("a layer is an object")
    layer = LayerRef(**{key: item[key] for key in item})
    if layer.name not in LAYER_NAMES:
        raise ValueError(f"unknown layer {layer.name!r}")
    if layer.media_type not in MEDIA_TYPES.values():
        raise ValueError(f"unknown media type {layer.media_type!r}")
    for value in (layer.digest, layer.index_sha256):
        if not _is_hex(value):
            raise ValueError("digests are 64 lowercase hex characters")
    if TAR_SHA256 in item and not _is_hex(layer.tar_sha256):
        raise ValueError("tar_sha256, where present, is 64 lowercase hex characters")
    if not all(_is_count(value) for value in (layer.size, layer.files, layer.bytes)):
        raise ValueError("sizes and counts are whole numbers")
    if layer.size < 1:
        raise ValueError("a layer has at least one byte")
    return layer


def _is_hex(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63

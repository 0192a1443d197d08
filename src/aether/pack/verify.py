"""``aether verify``: an artifact against its manifest, and optionally its signature.

Checks, in order: the file's sha256 against the manifest's digest; the signature (when a
public key is given); then every archive member against the manifest (path, kind, size, mode,
blake3, symlink target), no member missing or extra; finally ``tar_sha256`` where the
manifest records it (single-file artifacts, and layers packed by older versions). The first
mismatch is an IntegrityError that names it.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from aether.digests import sha256_file
from aether.errors import IntegrityError, IOFailure, UsageError
from aether.pack.layout import manifest_path, signature_path
from aether.pack.manifest import read_manifest
from aether.pack.reader import STREAM_ERRORS, open_tar, open_tar_stream
from aether.pack.signing import is_valid_public_key, verify_signature

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class VerifyReport:
    artifact: Path
    digest: str
    tar_sha256: str | None  # None: the manifest records none (a layer), so none was computed
    files: int
    directories: int
    symlinks: int
    bytes: int
    signature_verified: bool | None  # None when no public key was given

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "artifact": str(self.artifact),
            "digest": self.digest,
            "tar_sha256": self.tar_sha256,
            "files": self.files,
            "directories": self.directories,
            "symlinks": self.symlinks,
            "bytes": self.bytes,
            "signature_verified": self.signature_verified,
        }


def verify_artifact(
    artifact: Path,
    *,
    manifest: Path | None = None,
    public_key_hex: str | None = None,
    signature: Path | None = None,
) -> VerifyReport:
    """Verify ``artifact``; returns a report, raises IntegrityError on the first mismatch."""
    if not artifact.is_file():
        raise IOFailure(f"no artifact at {artifact}")
    data = read_manifest(manifest or manifest_path(artifact))
    digest = sha256_file(artifact)
    if digest != data.get("digest"):
        raise IntegrityError(
            f"digest mismatch: {artifact.name} hashes to {digest}, the manifest says "
            f"{data.get('digest')}"
        )
    verified = None
    if public_key_hex is not None:
        _check_signature(public_key_hex, digest, signature or signature_path(artifact))
        verified = True
    recorded = "tar_sha256" in data
    tar_sha256 = _check_members(artifact, _expected_entries(data), hashed=recorded)
    if recorded and tar_sha256 != data["tar_sha256"]:
        raise IntegrityError(
            f"tar_sha256 mismatch: the archive's tar hashes to {tar_sha256}, the manifest "
            f"says {data['tar_sha256']}"
        )
    totals = _totals(data.get("totals"))
    return VerifyReport(
        artifact=artifact,
        digest=digest,
        tar_sha256=tar_sha256,
        files=totals["files"],
        directories=totals["directories"],
        symlinks=totals["symlinks"],
        bytes=totals["bytes"],
        signature_verified=verified,
    )


def _totals(value: object) -> dict[str, int]:
    """The manifest's counts (informational: the members were checked one by one)."""
    counts = value if isinstance(value, dict) else {}
    return {
        name: count if isinstance(count := counts.get(name), int) else 0
        for name in ("files", "directories", "symlinks", "bytes")
    }


def _check_signature(public_key_hex: str, digest: str, path: Path) -> None:
    if not is_valid_public_key(public_key_hex):
        raise UsageError("--public-key must be 64 hex characters of an Ed25519 public key")
    try:
        signature_hex = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise IntegrityError(f"no signature at {path}; the artifact is not signed") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise IOFailure(f"cannot read {path}: {exc}") from exc
    if not verify_signature(public_key_hex, digest, signature_hex):
        raise IntegrityError(
            f"signature mismatch: {path.name} is not a signature of {digest} by that key"
        )


def _expected_entries(data: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    expected: dict[str, tuple[Any, ...]] = {}
    try:
        for item in data["files"]:
            expected[item["path"]] = ("file", item["size"], int(item["mode"], 8), item["blake3"])
        for path in data["directories"]:
            expected[path] = ("dir",)
        for item in data["symlinks"]:
            expected[item["path"]] = ("symlink", item["target"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"the manifest is malformed: {exc}") from exc
    return expected


def _check_members(
    artifact: Path, expected: dict[str, tuple[Any, ...]], *, hashed: bool
) -> str | None:
    """Every member against ``expected``; the tar stream's sha256 with ``hashed``."""
    with open_tar_stream(artifact, hashed=hashed) as stream:
        try:
            archive = open_tar(stream)
            for member in archive:
                name = member.name.rstrip("/")
                want = expected.pop(name, None)
                if want is None:
                    raise IntegrityError(f"entry {name} is in the archive but not in the manifest")
                got = _describe(archive, member)
                if got != want:
                    raise IntegrityError(f"entry {name} differs: archive {got}, manifest {want}")
            stream.drain()
        except STREAM_ERRORS as exc:
            raise IntegrityError(f"{artifact.name} is not a readable archive: {exc}") from exc
    if expected:
        raise IntegrityError(f"entry {min(expected)} is in the manifest but not in the archive")
    return stream.hexdigest() if hashed else None


def _describe(archive: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[Any, ...]:
    if member.isdir():
        return ("dir",)
    if member.issym():
        return ("symlink", member.linkname)
    if not member.isreg():
        return ("other", member.type)
    hasher = blake3.blake3()
    handle = archive.extractfile(member)
    assert handle is not None  # a regular member always has data
    while chunk := handle.read(_CHUNK):
        hasher.update(chunk)
    return ("file", member.size, member.mode, hasher.hexdigest())


@dataclass(frozen=True)
class LayeredReport:
    artifact: Path
    digest: str
    layers: tuple[VerifyReport, ...]
    names: tuple[str, ...]
    signature_verified: bool | None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "format": 2,
            "artifact": str(self.artifact),
            "digest": self.digest,
            "files": sum(layer.files for layer in self.layers),
            "directories": sum(layer.directories for layer in self.layers),
            "symlinks": sum(layer.symlinks for layer in self.layers),
            "bytes": sum(layer.bytes for layer in self.layers),
            "signature_verified": self.signature_verified,
            "layers": [
                {"name": name, **layer.as_json()}
                for name, layer in zip(self.names, self.layers, strict=True)
            ],
        }


def is_layered(path: Path) -> bool:
    """``path`` holds a format-2 artifact manifest (sniffed from its first bytes)."""
    from aether.pack.artifact_manifest import looks_like_manifest

    try:
        with path.open("rb") as handle:
            return looks_like_manifest(handle.read(32))
    except OSError:
        return False


def verify_layered(
    manifest_file: Path,
    *,
    public_key_hex: str | None = None,
    signature: Path | None = None,
) -> LayeredReport:
    """A format-2 artifact: the canonical manifest, its signature (with a key), then every
    layer in ``layers/`` beside it against its digest and its file index."""
    from aether.pack.artifact_manifest import artifact_digest, parse_artifact_manifest
    from aether.pack.layered import layer_file

    try:
        raw = manifest_file.read_bytes()
    except OSError as exc:
        raise IOFailure(f"cannot read {manifest_file}: {exc.strerror or exc}") from exc
    manifest = parse_artifact_manifest(raw)
    digest = artifact_digest(raw)
    verified = None
    if public_key_hex is not None:
        _check_signature(public_key_hex, digest, signature or signature_path(manifest_file))
        verified = True
    reports = []
    for layer in manifest.layers:
        path = layer_file(manifest_file.parent, layer.digest, layer.compression)
        index = manifest_path(path)
        if not path.is_file() or not index.is_file():
            raise IntegrityError(f"the {layer.name} layer {path.name} or its index is missing")
        if sha256_file(index) != layer.index_sha256:
            raise IntegrityError(f"the {layer.name} layer's file index {index.name} was changed")
        report = verify_artifact(path, manifest=index)
        # The index (pinned above) and the reference record tar_sha256 together or not at all.
        if report.tar_sha256 != layer.tar_sha256 or path.stat().st_size != layer.size:
            raise IntegrityError(f"the {layer.name} layer does not match the artifact manifest")
        reports.append(report)
    return LayeredReport(
        artifact=manifest_file,
        digest=digest,
        layers=tuple(reports),
        names=tuple(layer.name for layer in manifest.layers),
        signature_verified=verified,
    )

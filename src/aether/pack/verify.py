"""``aether verify``: an artifact against its manifest, and optionally its signature.

Checks, in order: the file's sha256 against the manifest's digest; the signature (when a
public key is given); then every archive member against the manifest (path, kind, size, mode,
blake3, symlink target), no member missing or extra; finally ``tar_sha256``. The first
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
    tar_sha256: str
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
    tar_sha256 = _check_members(artifact, _expected_entries(data))
    if tar_sha256 != data.get("tar_sha256"):
        raise IntegrityError(
            f"tar_sha256 mismatch: the archive's tar hashes to {tar_sha256}, the manifest "
            f"says {data.get('tar_sha256')}"
        )
    totals = data.get("totals") or {}
    return VerifyReport(
        artifact=artifact,
        digest=digest,
        tar_sha256=tar_sha256,
        files=int(totals.get("files", 0)),
        directories=int(totals.get("directories", 0)),
        symlinks=int(totals.get("symlinks", 0)),
        bytes=int(totals.get("bytes", 0)),
        signature_verified=verified,
    )


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


def _check_members(artifact: Path, expected: dict[str, tuple[Any, ...]]) -> str:
    with open_tar_stream(artifact) as stream:
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
    return stream.hexdigest()


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

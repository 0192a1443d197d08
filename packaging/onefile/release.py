"""``SHA256SUMS`` for the built files and, with a release key, its Ed25519 signature.

``SHA256SUMS`` is what ``sha256sum -c`` reads. ``SHA256SUMS.sig`` is an Ed25519 signature
over the file's own sha256 in the format of artifact signatures (``aether.pack.signing``:
the ASCII hex digest signed, 128 hex characters), made with ``AETHER_RELEASE_KEY`` (64 hex
characters of seed, or a PEM file). README's "Checking a download" shows the check with
OpenSSL alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SUMS = "SHA256SUMS"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(folder: Path, names: list[str]) -> Path:
    lines = [f"{file_sha256(folder / name)}  {name}\n" for name in sorted(names)]
    path = folder / SUMS
    path.write_text("".join(lines))
    return path


def sign_sums(sums: Path, key_spec: str) -> tuple[Path, str]:
    """Write ``SHA256SUMS.sig``; returns it and the public key to publish, as PEM."""
    from cryptography.hazmat.primitives import serialization

    from aether.pack.signing import load_private_key, sign_digest

    signature = sign_digest(key_spec, file_sha256(sums))
    path = sums.with_name(SUMS + ".sig")
    path.write_text(signature + "\n")
    public = (
        load_private_key(key_spec)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path, public.decode("ascii")

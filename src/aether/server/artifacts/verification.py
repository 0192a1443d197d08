"""Trust nothing unverified: checks an uploaded object and an artifact signature.

``verify_object`` runs on every complete, before a row may become ``stored``: the object must
exist, its size must match (``AETHER_VERIFY_REMOTE_SIZE``), its recorded sha256 — S3's checksum
or ``x-amz-meta-sha256``, the local store's streamed hash — must match
(``AETHER_VERIFY_REMOTE_DIGEST``), and it is re-hashed in full when ``AETHER_VERIFY_REMOTE_HASH``
is on (the local store's default: always; when set explicitly: objects up to
``AETHER_REMOTE_HASH_MAX_BYTES``). A mismatching object is deleted.
"""

from __future__ import annotations

import re

from aether.blobs import BlobStore
from aether.errors import BadRequest, DigestMismatch
from aether.pack.signing import verify_signature
from aether.server.artifacts import metrics
from aether.settings import ArtifactPolicy

_SIGNATURE = re.compile(r"^[0-9a-f]{128}$")


def _should_rehash(policy: ArtifactPolicy, blobs: BlobStore, size: int) -> bool:
    if policy.verify_remote_hash is None:
        return blobs.default_verify_hash  # the local store: always, it is cheap
    return policy.verify_remote_hash and size <= policy.remote_hash_max_bytes


async def _mismatch_reason(
    blobs: BlobStore, policy: ArtifactPolicy, key: str, digest: str, size_bytes: int
) -> str | None:
    info = await blobs.head(key)
    if info is None:
        raise BadRequest(f"nothing was uploaded to {key}; PUT the artifact to its URL first")
    if policy.verify_remote_size and info.size != size_bytes:
        return f"stored object is {info.size} bytes, not the announced {size_bytes}"
    rehash = _should_rehash(policy, blobs, info.size)
    if policy.verify_remote_digest:
        if info.sha256 is None and not rehash:
            return "stored object carries no sha256 to verify"
        if info.sha256 is not None and info.sha256 != digest:
            return "stored object's recorded sha256 differs from the digest"
    if rehash and await blobs.read_sha256(key) != digest:
        return "stored bytes do not hash to the digest"
    return None


async def verify_object(
    blobs: BlobStore, policy: ArtifactPolicy, key: str, digest: str, size_bytes: int
) -> None:
    """Return when the object checks out; otherwise delete it and raise DigestMismatch."""
    reason = await _mismatch_reason(blobs, policy, key, digest, size_bytes)
    if reason is None:
        return
    metrics.DIGEST_MISMATCHES.inc()
    await blobs.delete(key)
    raise DigestMismatch(f"{reason}; the object was deleted, upload the artifact again")


def check_signature_format(signature: str | None) -> str | None:
    if signature is None:
        return None
    signature = signature.strip().lower()
    if not _SIGNATURE.match(signature):
        raise BadRequest("signature must be 128 hex characters (Ed25519 over the hex digest)")
    return signature


def signature_matches(public_keys: list[str], digest: str, signature: str | None) -> bool:
    """True when an app's active key signed the ASCII hex digest."""
    if signature is None:
        return False
    return any(verify_signature(key, digest, signature) for key in public_keys)

"""Trust nothing unverified: checks an uploaded object and an artifact signature.

``verify_object`` runs on every complete, before a row may become ``stored``, and no row
becomes stored unless something other than the uploader proved that the bytes hash to the
digest: the store's own checksum, where the store refuses uploads that miss it (probed at
start-up: ``ServerState.store_verifies_checksums``), or else the server re-hashing the whole
object as it streams from the store (memory stays flat; multipart objects, whose S3 checksum
is a checksum of checksums, always take this path). Before that, cheap checks reject early:
the object must exist, its size must match (``AETHER_VERIFY_REMOTE_SIZE``), and any sha256 it
carries — the store's checksum or the uploader's ``x-amz-meta-sha256`` — must equal the digest
(``AETHER_VERIFY_REMOTE_DIGEST``). ``AETHER_VERIFY_REMOTE_HASH`` re-hashes even objects the
store's checksum proved (the local store's default; when set explicitly, objects up to
``AETHER_REMOTE_HASH_MAX_BYTES``). A mismatching object is deleted.
"""

from __future__ import annotations

import re

from aether.blobs import BlobStore, ObjectInfo
from aether.errors import BadRequest, DigestMismatch
from aether.pack.signing import verify_signature
from aether.server.artifacts import metrics
from aether.settings import ArtifactPolicy

_SIGNATURE = re.compile(r"^[0-9a-f]{128}$")


def _extra_rehash(policy: ArtifactPolicy, blobs: BlobStore, size: int) -> bool:
    """Re-hash an object even though the store's checksum proved it?"""
    if policy.verify_remote_hash is None:
        return blobs.default_verify_hash  # the local store: always, it is cheap
    return policy.verify_remote_hash and size <= policy.remote_hash_max_bytes


def _proved_by_store(info: ObjectInfo, digest: str, store_verifies: bool) -> bool:
    return store_verifies and info.sha256 == digest


async def _mismatch_reason(
    blobs: BlobStore,
    policy: ArtifactPolicy,
    key: str,
    digest: str,
    size_bytes: int,
    store_verifies: bool,
) -> str | None:
    info = await blobs.head(key)
    if info is None:
        raise BadRequest(f"nothing was uploaded to {key}; PUT the artifact to its URL first")
    if policy.verify_remote_size and info.size != size_bytes:
        return f"stored object is {info.size} bytes, not the announced {size_bytes}"
    if policy.verify_remote_digest:
        recorded = {info.sha256, info.claimed_sha256} - {None, digest}
        if recorded:
            return "stored object's recorded sha256 differs from the digest"
    proved = _proved_by_store(info, digest, store_verifies)
    if proved and not _extra_rehash(policy, blobs, info.size):
        return None
    if await blobs.read_sha256(key) != digest:  # streamed: memory stays flat
        return "stored bytes do not hash to the digest"
    return None


async def verify_object(
    blobs: BlobStore,
    policy: ArtifactPolicy,
    key: str,
    digest: str,
    size_bytes: int,
    *,
    store_verifies: bool,
) -> None:
    """Return when the object is proven to hash to ``digest``; otherwise delete it and raise
    DigestMismatch. ``store_verifies``: the store refuses bytes that miss their checksum."""
    reason = await _mismatch_reason(blobs, policy, key, digest, size_bytes, store_verifies)
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

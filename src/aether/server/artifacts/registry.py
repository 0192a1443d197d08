"""The upload protocols' decisions, apart from HTTP: presign, multipart init, complete.

Route handlers authenticate, parse and call these with the app row they resolved. A row goes
``pending`` at presign/init and ``stored`` only after :func:`verify_object`; the store's
:func:`~aether.store.artifacts.complete` flips it with one ``UPDATE … WHERE status =
'pending'`` and records the event and the idempotency key in the same transaction, so
concurrent completes of one digest store one row and the others answer ``duplicate: true``.
Retention and the artifacts gauge follow in the artifact GC loop, outside the request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from aether.blobs import storage_key
from aether.digests import sha256_stream
from aether.errors import (
    AetherError,
    BadRequest,
    Conflict,
    DigestMismatch,
    IdempotencyConflict,
    InvalidDigest,
    QuotaExceeded,
    SizeExceeded,
)
from aether.models import is_digest
from aether.pack.reader import detect_compression
from aether.server.artifacts import metrics
from aether.server.artifacts.verification import (
    check_signature_format,
    signature_matches,
    verify_object,
)
from aether.server.state import ServerState
from aether.settings import ArtifactPolicy
from aether.store import artifacts as artifact_store
from aether.store import public_keys as public_key_store
from aether.store.clock import parse_iso
from aether.store.database import DuplicateKey, Row

MAX_OBJECT_BYTES = 5 * 2**40  # S3's largest object


@dataclass(frozen=True)
class Upload:
    """What a client announces before sending bytes."""

    digest: str
    size_bytes: int
    compression: str = "zstd"


@dataclass(frozen=True)
class Completion:
    """What a client claims once its bytes are in the store."""

    digest: str
    size_bytes: int
    signature: str | None = None
    idempotency_key: str | None = None
    upload_id: str | None = None
    parts: tuple[tuple[int, str], ...] = ()


def check_announcement(policy: ArtifactPolicy, digest: str, size_bytes: int) -> None:
    if not is_digest(digest):
        raise InvalidDigest("digest must be 64 lowercase hex characters (sha256 of the file)")
    if size_bytes < 1:
        raise BadRequest("size_bytes must be a positive integer")
    if size_bytes > MAX_OBJECT_BYTES:
        raise SizeExceeded(
            f"artifact is {size_bytes} bytes; no object store holds more than"
            f" {MAX_OBJECT_BYTES} (5 TiB) in one object"
        )
    limit = policy.max_artifact_size_bytes
    if limit and size_bytes > limit:
        metrics.SIZE_EXCEEDED.inc()
        raise SizeExceeded(
            f"artifact is {size_bytes} bytes; this server accepts at most {limit}"
            " (AETHER_MAX_ARTIFACT_SIZE_BYTES)"
        )


async def check_quota(state: ServerState, app: Row, size_bytes: int) -> None:
    policy = state.policy
    count, total = await artifact_store.app_usage(state.db, app["id"])
    if policy.max_artifacts_per_app and count >= policy.max_artifacts_per_app:
        message = f"app {app['name']!r} already stores {count} artifacts (the quota)"
    elif policy.max_total_bytes_per_app and total + size_bytes > policy.max_total_bytes_per_app:
        message = (
            f"app {app['name']!r} would store {total + size_bytes} bytes,"
            f" above its quota of {policy.max_total_bytes_per_app}"
        )
    else:
        return
    metrics.QUOTA_EXCEEDED.inc()
    raise QuotaExceeded(message + "; delete old artifacts or ask an operator to raise it")


def answer(row: Row, *, duplicate: bool) -> dict[str, Any]:
    return {
        "artifact_id": row["id"],
        "digest": row["digest"],
        "duplicate": duplicate,
        "verified": bool(row["verified"]),
        "storage_key": row["storage_key"],
        "status": "stored",
    }


# --- presign and multipart init ----------------------------------------------------------------


async def presign(state: ServerState, app: Row, upload: Upload) -> dict[str, Any]:
    metrics.PRESIGN_REQUESTS.inc()
    check_announcement(state.policy, upload.digest, upload.size_bytes)
    row = await _prepare(state, app, upload, upload_id=None)
    if row["status"] == "stored":
        return {
            "method": "NONE",
            "upload_url": None,
            "storage_key": row["storage_key"],
            "headers": {},
            "expires_at": None,
        }
    expires = state.blob_settings.presign_expire_secs
    try:
        request = await state.blobs.presign_put(
            row["storage_key"], size=upload.size_bytes, sha256=upload.digest, expires_secs=expires
        )
    except AetherError:
        metrics.PRESIGN_FAILURES.inc()
        raise
    return {
        "method": request.method,
        "upload_url": request.url,
        "storage_key": row["storage_key"],
        "headers": request.headers,
        "expires_at": request.expires_at,
    }


async def start_multipart(state: ServerState, app: Row, upload: Upload) -> dict[str, Any]:
    metrics.MULTIPART_INITS.inc()
    check_announcement(state.policy, upload.digest, upload.size_bytes)
    part_size = state.policy.multipart_part_size_bytes
    stored = await artifact_store.get_stored(state.db, upload.digest)
    if stored is not None:
        key = stored["storage_key"]
        return {
            "upload_id": None,
            "storage_key": key,
            "part_size_bytes": part_size,
            "duplicate": True,
        }
    key = storage_key(app["name"], upload.digest, upload.compression)
    upload_id = await state.blobs.create_multipart(key, sha256=upload.digest)
    row = await _prepare(state, app, upload, upload_id=upload_id)
    return {
        "upload_id": upload_id,
        "storage_key": row["storage_key"],
        "part_size_bytes": part_size,
        "duplicate": row["status"] == "stored",
    }


async def _prepare(state: ServerState, app: Row, upload: Upload, *, upload_id: str | None) -> Row:
    """The stored row when the digest is known, else a (refreshed) pending row."""
    stored = await artifact_store.get_stored(state.db, upload.digest)
    if stored is not None:
        return stored
    await check_quota(state, app, upload.size_bytes)
    return await artifact_store.upsert_pending(
        state.db,
        app_id=app["id"],
        digest=upload.digest,
        size_bytes=upload.size_bytes,
        compression=upload.compression,
        storage_key=storage_key(app["name"], upload.digest, upload.compression),
        upload_id=upload_id,
    )


# --- complete ----------------------------------------------------------------------------------


async def complete(state: ServerState, app: Row, completion: Completion) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = await _complete(state, app, completion)
    except AetherError:
        metrics.COMPLETE_FAILURES.inc()
        if completion.upload_id:
            metrics.MULTIPART_COMPLETE_FAILURES.inc()
        raise
    metrics.COMPLETE_DURATION.observe(time.monotonic() - started)
    if completion.upload_id:
        metrics.MULTIPART_COMPLETES.inc()
    return result


async def _complete(state: ServerState, app: Row, completion: Completion) -> dict[str, Any]:
    check_announcement(state.policy, completion.digest, completion.size_bytes)
    signature = check_signature_format(completion.signature)
    found = await artifact_store.lookup_complete(
        state.db, completion.digest, completion.idempotency_key
    )
    row = found.row
    if found.first_use is not None:
        _check_same_digest(found.first_use, completion.digest)
        # Retention may have deleted the artifact since: then this is a new complete after all.
        if row is not None and row["status"] == "stored":
            return answer(row, duplicate=found.first_use["duplicate"])
    if row is not None and row["status"] == "stored":
        return await _duplicate(state, row, signature, completion.idempotency_key)
    row = await _pending_row(state, app, completion, row)
    await check_quota(state, app, completion.size_bytes)
    if completion.upload_id:
        await _assemble(state, row, completion)
    await verify_object(
        state.blobs,
        state.policy,
        row["storage_key"],
        completion.digest,
        completion.size_bytes,
        store_verifies=state.store_verifies_checksums,
    )
    public_keys = await public_key_store.active_keys(state.db, app["id"])
    verified = signature_matches(public_keys, completion.digest, signature)
    return await _store(state, row, completion, signature, verified)


def _check_same_digest(first_use: Row | None, digest: str) -> None:
    if first_use is not None and first_use["digest"] != digest:
        raise IdempotencyConflict(
            f"idempotency_key was already used for digest {first_use['digest']}; use a new key"
        )


async def _duplicate(
    state: ServerState, row: Row, signature: str | None, idempotency_key: str | None = None
) -> dict[str, Any]:
    """An already stored digest: nothing is rewritten; a newly valid signature is recorded."""
    newly_signed = None
    if signature and not row["verified"]:
        public_keys = await public_key_store.active_keys(state.db, row["app_id"])
        if signature_matches(public_keys, row["digest"], signature):
            newly_signed = signature
    if newly_signed is None and idempotency_key is None:
        return answer(row, duplicate=True)
    done = await artifact_store.complete_duplicate(
        state.db, row, signature=newly_signed, idempotency_key=idempotency_key
    )
    _check_same_digest(done.first_use, row["digest"])
    return answer(done.row, duplicate=True)


async def _pending_row(
    state: ServerState, app: Row, completion: Completion, row: Row | None
) -> Row:
    if row is not None:
        if row["app_id"] != app["id"]:
            raise Conflict(f"this digest is being uploaded for app {row['app_name']!r}")
        return row
    if state.policy.require_presign:
        raise BadRequest(
            "no presigned upload for this digest; call POST /artifacts/presign first"
            " (AETHER_REQUIRE_PRESIGN is on)"
        )
    for compression in ("zstd", "gzip"):
        key = storage_key(app["name"], completion.digest, compression)
        if await state.blobs.head(key) is not None:
            return await artifact_store.upsert_pending(
                state.db,
                app_id=app["id"],
                digest=completion.digest,
                size_bytes=completion.size_bytes,
                compression=compression,
                storage_key=key,
            )
    raise BadRequest("nothing was uploaded for this digest; presign and PUT it first")


async def _assemble(state: ServerState, row: Row, completion: Completion) -> None:
    assert completion.upload_id is not None
    if not completion.parts:
        raise BadRequest("parts must list every uploaded part as {part_number, etag}")
    parts = sorted(completion.parts)
    await state.blobs.complete_multipart(row["storage_key"], completion.upload_id, parts)
    metrics.MULTIPART_PARTS.observe(len(parts))
    metrics.MULTIPART_PART_SIZE.observe(completion.size_bytes / len(parts))


async def _store(
    state: ServerState, row: Row, completion: Completion, signature: str | None, verified: bool
) -> dict[str, Any]:
    try:
        done = await artifact_store.complete(
            state.db,
            row["id"],
            signature=signature,
            verified=verified,
            idempotency_key=completion.idempotency_key,
        )
    except DuplicateKey as exc:
        raise IdempotencyConflict(
            "idempotency_key is in use by another upload; use a new key"
        ) from exc
    _check_same_digest(done.first_use, completion.digest)
    if done.won:
        # every path that stores bytes counts them: presigned, multipart and direct uploads
        metrics.UPLOAD_BYTES.inc(completion.size_bytes)
        _stored(state, done.row)
    return answer(done.row, duplicate=not done.won)


def _stored(state: ServerState, row: Row) -> None:
    """Metrics of a new artifact; retention and the gauge follow in the artifact GC loop."""
    metrics.EVENTS.inc()
    metrics.PUT_DURATION.observe(
        max(0.0, (parse_iso(row["completed_at"]) - parse_iso(row["created_at"])).total_seconds())
    )
    state.artifact_gc.request(row["app_id"])


async def abort_multipart(state: ServerState, row: Row, upload_id: str) -> None:
    """Drop the upload's parts and, when it is the row's upload, the pending row too."""
    await state.blobs.abort_multipart(row["storage_key"], upload_id)
    if row["upload_id"] == upload_id:
        await artifact_store.delete_pending(state.db, row["id"])


# --- layered artifacts ------------------------------------------------------------------------


async def register_manifest(
    state: ServerState, app: Row, raw: bytes, signature: str | None
) -> dict[str, Any]:
    """Store a layered artifact's manifest once every layer it names is stored.

    The manifest must be canonical (its digest is the sha256 of these exact bytes). The
    manifest object is written before its row, so a stored row always has its object.
    """
    import io

    from aether.blobs.storage_keys import manifest_key
    from aether.pack.artifact_manifest import artifact_digest, parse_artifact_manifest
    from aether.store import artifact_layers as layer_store

    signature = check_signature_format(signature)
    try:
        manifest = parse_artifact_manifest(raw)
    except AetherError as exc:
        raise BadRequest(f"manifest: {exc.message}") from exc
    digest = artifact_digest(raw)
    stored = await artifact_store.get_stored(state.db, digest)
    if stored is not None:
        return {**await _duplicate(state, stored, signature), "layers": _layers_answer(manifest)}
    await check_quota(state, app, len(raw))
    named = [
        layer_store.NamedLayer(layer.name, layer.digest, layer.size) for layer in manifest.layers
    ]
    await layer_store.check_stored(state.db, named)  # before writing anything
    key = manifest_key(app["name"], digest)
    await state.blobs.put_file(key, io.BytesIO(raw), sha256=digest)
    public_keys = await public_key_store.active_keys(state.db, app["id"])
    verified = signature_matches(public_keys, digest, signature)
    row, created = await layer_store.register(
        state.db,
        app_id=app["id"],
        digest=digest,
        size_bytes=len(raw),
        storage_key=key,
        compression=manifest.layers[-1].compression,
        layers=named,
        signature=signature,
        verified=verified,
    )
    if created:
        metrics.UPLOAD_BYTES.inc(len(raw))
        _stored(state, row)
    return {**answer(row, duplicate=not created), "layers": _layers_answer(manifest)}


def _layers_answer(manifest: Any) -> list[dict[str, Any]]:
    return [
        {"name": layer.name, "digest": layer.digest, "size_bytes": layer.size}
        for layer in manifest.layers
    ]


# --- the legacy direct upload ------------------------------------------------------------------


def _hash_and_sniff(source: BinaryIO) -> tuple[str, int, str]:
    """(sha256, size, compression) of an open file, read once from the start."""
    source.seek(0)
    head = source.read(4)
    source.seek(0)
    digest, size = sha256_stream(source)
    source.seek(0)
    # Stored as .tar.gz or .tar.zst: anything that is not gzip is kept under the zstd name.
    return digest, size, "gzip" if detect_compression(head) == "gzip" else "zstd"


async def store_direct(
    state: ServerState, app: Row, digest: str, source: BinaryIO, signature: str | None
) -> dict[str, Any]:
    """Store a body the server received itself: hash, verify, upload, mark stored."""
    signature = check_signature_format(signature)
    actual, size, compression = await asyncio.to_thread(_hash_and_sniff, source)
    check_announcement(state.policy, digest, size)
    if actual != digest:
        metrics.DIGEST_MISMATCHES.inc()
        raise DigestMismatch(f"the uploaded bytes hash to {actual}, not the announced digest")
    row = await _prepare(state, app, Upload(digest, size, compression), upload_id=None)
    if row["status"] == "stored":
        return await _duplicate(state, row, signature)
    await state.blobs.put_file(row["storage_key"], source, sha256=digest)
    await verify_object(
        state.blobs,
        state.policy,
        row["storage_key"],
        digest,
        size,
        store_verifies=state.store_verifies_checksums,
    )
    public_keys = await public_key_store.active_keys(state.db, app["id"])
    verified = signature_matches(public_keys, digest, signature)
    return await _store(state, row, Completion(digest, size, signature), signature, verified)

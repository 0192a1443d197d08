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
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

from aether.blobs import storage_key
from aether.blobs.storage_keys import upload_key
from aether.digests import sha256_stream
from aether.errors import (
    AetherError,
    BadRequest,
    Conflict,
    DigestMismatch,
    IdempotencyConflict,
    InvalidDigest,
    NotFound,
    QuotaExceeded,
    SizeExceeded,
)
from aether.models import is_digest
from aether.pack.reader import detect_compression
from aether.server.artifacts import metrics, possession
from aether.server.artifacts.verification import (
    check_signature_format,
    signature_matches,
    verify_object,
)
from aether.server.auth import Principal
from aether.server.state import ServerState
from aether.settings import ArtifactPolicy
from aether.store import artifact_references as reference_store
from aether.store import artifact_uploads as upload_store
from aether.store import artifacts as artifact_store
from aether.store import public_keys as public_key_store
from aether.store.clock import parse_iso
from aether.store.database import DuplicateKey, Row

log = logging.getLogger("aether.server.artifacts")
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


def _not_needed(stored: Row) -> dict[str, Any]:
    return {
        "method": "NONE",
        "upload_url": None,
        "storage_key": stored["storage_key"],
        "headers": {},
        "expires_at": None,
    }


async def presign(state: ServerState, who: Principal, app: Row, upload: Upload) -> dict[str, Any]:
    metrics.PRESIGN_REQUESTS.inc()
    check_announcement(state.policy, upload.digest, upload.size_bytes)
    stored = await _held(state, who, app, upload.digest)
    if stored is not None:
        return _not_needed(stored)
    row = await _prepare(state, app, upload, upload_id=None)
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


async def start_multipart(
    state: ServerState, who: Principal, app: Row, upload: Upload
) -> dict[str, Any]:
    metrics.MULTIPART_INITS.inc()
    check_announcement(state.policy, upload.digest, upload.size_bytes)
    part_size = state.policy.multipart_part_size_bytes
    stored = await _held(state, who, app, upload.digest)
    if stored is not None:
        key = stored["storage_key"]
        return {
            "upload_id": None,
            "storage_key": key,
            "part_size_bytes": part_size,
            "duplicate": True,
        }
    key = await _upload_key(state, app, upload.digest, upload.compression)
    upload_id = await state.blobs.create_multipart(key, sha256=upload.digest)
    row = await _prepare(state, app, upload, upload_id=upload_id, key=key)
    return {
        "upload_id": upload_id,
        "storage_key": row["storage_key"],
        "part_size_bytes": part_size,
        "duplicate": False,
    }


async def _held(state: ServerState, who: Principal | None, app: Row, digest: str) -> Row | None:
    """The stored row when ``app`` holds ``digest`` (:mod:`possession`), else None."""
    stored = await artifact_store.get_stored(state.db, digest)
    if stored is None or not await possession.holds(state, who, app, digest):
        return None
    return stored


async def _upload_key(state: ServerState, app: Row, digest: str, compression: str) -> str:
    """Where this app's upload goes: the digest's key under the app's name, unless the stored
    artifact lives there (kept for another app after this name's app was destroyed): an
    upload must never write over stored bytes before they are verified."""
    key = storage_key(app["name"], digest, compression)
    stored = await artifact_store.get_stored(state.db, digest)
    if stored is not None and stored["storage_key"] == key:
        return upload_key(app["name"], digest, compression, uuid.uuid4().hex)
    return key


async def _prepare(
    state: ServerState, app: Row, upload: Upload, *, upload_id: str | None, key: str | None = None
) -> Row:
    """This app's upload record of the digest, created or refreshed."""
    await check_quota(state, app, upload.size_bytes)
    return await upload_store.upsert(
        state.db,
        app_id=app["id"],
        digest=upload.digest,
        size_bytes=upload.size_bytes,
        compression=upload.compression,
        storage_key=key or await _upload_key(state, app, upload.digest, upload.compression),
        upload_id=upload_id,
    )


# --- complete ----------------------------------------------------------------------------------


async def complete(
    state: ServerState, who: Principal | None, app: Row, completion: Completion
) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = await _complete(state, who, app, completion)
    except AetherError:
        metrics.COMPLETE_FAILURES.inc()
        if completion.upload_id:
            metrics.MULTIPART_COMPLETE_FAILURES.inc()
        raise
    metrics.COMPLETE_DURATION.observe(time.monotonic() - started)
    if completion.upload_id:
        metrics.MULTIPART_COMPLETES.inc()
    return result


async def _complete(
    state: ServerState, who: Principal | None, app: Row, completion: Completion
) -> dict[str, Any]:
    check_announcement(state.policy, completion.digest, completion.size_bytes)
    signature = check_signature_format(completion.signature)
    first_use = None
    if completion.idempotency_key:
        first_use = await artifact_store.get_by_idempotency_key(
            state.db, completion.idempotency_key
        )
    held = await _held(state, who, app, completion.digest)
    if first_use is not None:
        _check_same_digest(first_use, completion.digest)
        # Retention may have deleted the artifact since: then this is a new complete after all.
        if held is not None:
            return answer(held, duplicate=first_use["duplicate"])
    if held is not None:
        return await _duplicate(state, held, signature, completion.idempotency_key)
    upload = await upload_store.get(state.db, app["id"], completion.digest)
    if upload is None:
        held = await _held(state, who, app, completion.digest)
        if held is not None:  # a concurrent complete of this upload stored it just now
            return await _duplicate(state, held, signature, completion.idempotency_key)
        upload = await _adopt_object(state, app, completion)
    elif completion.upload_id and upload["upload_id"] != completion.upload_id:
        raise NotFound("no such multipart upload for this digest; start it again")
    await check_quota(state, app, completion.size_bytes)
    if completion.upload_id:
        await _assemble(state, upload, completion)
    await verify_object(
        state.blobs,
        state.policy,
        upload["storage_key"],
        completion.digest,
        completion.size_bytes,
        store_verifies=state.store_verifies_checksums,
    )
    public_keys = await public_key_store.active_keys(state.db, app["id"])
    verified = signature_matches(public_keys, completion.digest, signature)
    return await _store(state, upload, completion, signature, verified)


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


async def _adopt_object(state: ServerState, app: Row, completion: Completion) -> Row:
    """No presigned upload: with AETHER_REQUIRE_PRESIGN off, an object already under the
    app's key (never a stored artifact's) becomes its upload."""
    if state.policy.require_presign:
        raise BadRequest(
            "no presigned upload for this digest; call POST /artifacts/presign first"
            " (AETHER_REQUIRE_PRESIGN is on)"
        )
    stored = await artifact_store.get_stored(state.db, completion.digest)
    for compression in ("zstd", "gzip"):
        key = storage_key(app["name"], completion.digest, compression)
        if stored is not None and stored["storage_key"] == key:
            continue  # stored bytes are not this app's upload
        if await state.blobs.head(key) is not None:
            return await upload_store.upsert(
                state.db,
                app_id=app["id"],
                digest=completion.digest,
                size_bytes=completion.size_bytes,
                compression=compression,
                storage_key=key,
            )
    raise BadRequest("nothing was uploaded for this digest; presign and PUT it first")


async def _assemble(state: ServerState, upload: Row, completion: Completion) -> None:
    assert completion.upload_id is not None
    if not completion.parts:
        raise BadRequest("parts must list every uploaded part as {part_number, etag}")
    parts = sorted(completion.parts)
    await check_part_sizes(state, upload, completion.upload_id)
    await state.blobs.complete_multipart(upload["storage_key"], completion.upload_id, parts)
    metrics.MULTIPART_PARTS.observe(len(parts))
    metrics.MULTIPART_PART_SIZE.observe(completion.size_bytes / len(parts))


def part_size_limit(state: ServerState, upload: Row) -> int:
    """The most bytes one part of this upload may hold: the part size the server announced,
    and never more than the upload's announced total (parts may be smaller)."""
    return min(state.policy.multipart_part_size_bytes, int(upload["size_bytes"]))


async def check_part_sizes(state: ServerState, upload: Row, upload_id: str) -> None:
    """Refuse (and abort) an upload holding a part larger than announced, on any store."""
    for part in await state.blobs.list_parts(upload["storage_key"], upload_id):
        if part.size > part_size_limit(state, upload):
            await abort_multipart(state, upload, upload_id)
            raise BadRequest(
                f"part {part.part_number} holds {part.size} bytes, more than the announced"
                " part size allows; the upload was aborted, start it again"
            )


async def _store(
    state: ServerState, upload: Row, completion: Completion, signature: str | None, verified: bool
) -> dict[str, Any]:
    try:
        done = await artifact_store.complete(
            state.db,
            upload,
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
    elif done.row["storage_key"] != upload["storage_key"]:
        await _delete_copy(state, upload["storage_key"])  # possession proven: one copy kept
    return answer(done.row, duplicate=not done.won)


async def _delete_copy(state: ServerState, key: str) -> None:
    try:
        await state.blobs.delete(key)
    except AetherError as exc:  # only wasted space: the pending GC's purge may find it later
        log.warning("could not delete the duplicate upload %s: %s", key, exc.message)


def _stored(state: ServerState, row: Row) -> None:
    """Metrics of a new artifact; retention and the gauge follow in the artifact GC loop."""
    metrics.EVENTS.inc()
    metrics.PUT_DURATION.observe(
        max(0.0, (parse_iso(row["completed_at"]) - parse_iso(row["created_at"])).total_seconds())
    )
    state.artifact_gc.request(row["app_id"])


async def abort_multipart(state: ServerState, upload: Row, upload_id: str) -> None:
    """Drop the upload's parts and, when it is the record's upload, the record too."""
    await state.blobs.abort_multipart(upload["storage_key"], upload_id)
    if upload["upload_id"] == upload_id:
        await upload_store.delete(state.db, upload["id"])


# --- layered artifacts ------------------------------------------------------------------------


async def register_manifest(
    state: ServerState,
    who: Principal,
    app: Row,
    raw: bytes,
    signature: str | None,
    *,
    sbom_required: bool = False,
) -> dict[str, Any]:
    """Store a layered artifact's manifest once every layer it names is stored (and, with
    ``sbom_required``, the SBOM it names: a client that took it as stored learns otherwise).

    The manifest must be canonical (its digest is the sha256 of these exact bytes). The
    manifest object is written before its row, so a stored row always has its object.
    """
    import io

    from aether.blobs.storage_keys import manifest_key
    from aether.pack.artifact_manifest import SBOM, artifact_digest, parse_artifact_manifest
    from aether.store import artifact_layers as layer_store

    signature = check_signature_format(signature)
    try:
        manifest = parse_artifact_manifest(raw)
    except AetherError as exc:
        raise BadRequest(f"manifest: {exc.message}") from exc
    digest = artifact_digest(raw)
    for layer in manifest.layers:  # a layer's digest alone grants nothing (possession)
        if await _held(state, who, app, layer.digest) is None:
            raise Conflict(
                f"layer {layer.name} ({layer.digest}) is not stored for app {app['name']!r};"
                " upload it, then register the manifest again"
            )
    named = [
        layer_store.NamedLayer(layer.name, layer.digest, layer.size) for layer in manifest.layers
    ]
    sbom = await _held(state, who, app, manifest.sbom_sha256) if manifest.sbom_sha256 else None
    if sbom is None and manifest.sbom_sha256 and sbom_required:
        raise Conflict(
            f"the SBOM ({manifest.sbom_sha256}) is not stored for app {app['name']!r};"
            " upload it, then register the manifest again"
        )
    if sbom is not None:  # uploaded beside the layers (a client that does not, deploys on)
        named.append(layer_store.NamedLayer(SBOM, sbom["digest"], int(sbom["size_bytes"])))
    layer_digests = [layer.digest for layer in named]
    stored = await artifact_store.get_stored(state.db, digest)
    if stored is not None:
        await reference_store.add(state.db, digest, app["id"])
        return {**await _duplicate(state, stored, signature), **_named_answer(manifest, sbom)}
    await check_quota(state, app, len(raw))
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
    await reference_store.add_many(state.db, [digest, *layer_digests], app["id"])
    if created:
        metrics.UPLOAD_BYTES.inc(len(raw))
        _stored(state, row)
    return {**answer(row, duplicate=not created), **_named_answer(manifest, sbom)}


def _named_answer(manifest: Any, sbom: Row | None) -> dict[str, Any]:
    """The layers, and the SBOM the artifact names when it was uploaded (else null)."""
    return {
        "layers": [
            {"name": layer.name, "digest": layer.digest, "size_bytes": layer.size}
            for layer in manifest.layers
        ],
        "sbom": None
        if sbom is None
        else {"digest": sbom["digest"], "size_bytes": int(sbom["size_bytes"])},
    }


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
    state: ServerState,
    who: Principal,
    app: Row,
    digest: str,
    source: BinaryIO,
    signature: str | None,
) -> dict[str, Any]:
    """Store a body the server received itself: hash, verify, upload, mark stored. When the
    digest is stored already the hashed body proves possession: no second copy is written."""
    signature = check_signature_format(signature)
    actual, size, compression = await asyncio.to_thread(_hash_and_sniff, source)
    check_announcement(state.policy, digest, size)
    if actual != digest:
        metrics.DIGEST_MISMATCHES.inc()
        raise DigestMismatch(f"the uploaded bytes hash to {actual}, not the announced digest")
    held = await _held(state, who, app, digest)
    if held is not None:
        return await _duplicate(state, held, signature)
    upload = await _prepare(state, app, Upload(digest, size, compression), upload_id=None)
    if await artifact_store.get_stored(state.db, digest) is None:
        await state.blobs.put_file(upload["storage_key"], source, sha256=digest)
        await verify_object(
            state.blobs,
            state.policy,
            upload["storage_key"],
            digest,
            size,
            store_verifies=state.store_verifies_checksums,
        )
    public_keys = await public_key_store.active_keys(state.db, app["id"])
    verified = signature_matches(public_keys, digest, signature)
    return await _store(state, upload, Completion(digest, size, signature), signature, verified)

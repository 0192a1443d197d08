"""Artifact garbage collection: ``aether gc`` and a background task of ``aether serve``.

An upload record (``artifact_uploads``) older than ``AETHER_PENDING_TTL_SECS`` is an upload
that was abandoned: its multipart upload is aborted, any object under its key (never verified)
is deleted, the record goes and a ``pending_gc`` event records it. Then the store drops multipart uploads and temporary
files older than the TTL that no pending row points at any more (a live upload is kept even
when the store reports a wrong start date for it).

``serve``'s loop also applies the retention policy (:mod:`aether.server.artifacts.retention`)
to every app that stored a new artifact, woken by the complete that stored it, so a complete
answers without waiting for deletions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from aether.blobs import BlobStore, open_blob_store
from aether.errors import AetherError
from aether.server.artifacts import metrics
from aether.server.artifacts.retention import apply_retention, refresh_artifact_gauge
from aether.server.state import ServerState
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings
from aether.store import artifact_uploads as upload_store
from aether.store import artifacts as artifact_store
from aether.store import open_database
from aether.store.clock import now_iso
from aether.store.database import Database, Row
from aether.store.migrate import migrate

log = logging.getLogger("aether.server.gc")


@dataclass(frozen=True)
class GcReport:
    deleted_pending: int  # stale pending rows removed (with their objects and uploads)
    purged_uploads: int  # orphaned multipart uploads / temporary files dropped by the store
    ttl_secs: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def collect_pending(db: Database, blobs: BlobStore, *, ttl_secs: int) -> GcReport:
    """One GC pass over rows pending for longer than ``ttl_secs``."""
    metrics.PENDING_GC_RUNS.inc()
    stale = await upload_store.stale(db, created_before=now_iso(-ttl_secs))
    deleted = 0
    for row in stale:
        if await _drop(db, blobs, row, ttl_secs):
            deleted += 1
    metrics.PENDING_GC_DELETED.inc(deleted)
    live = await upload_store.upload_ids(db)
    purged = await blobs.purge_stale(ttl_secs, keep=frozenset(live))
    return GcReport(deleted_pending=deleted, purged_uploads=purged, ttl_secs=ttl_secs)


async def _drop(db: Database, blobs: BlobStore, row: Row, ttl_secs: int) -> bool:
    if row["upload_id"]:
        await blobs.abort_multipart(row["storage_key"], row["upload_id"])
    if not await upload_store.delete(db, row["id"]):
        return False  # completed meanwhile: its object is now the stored artifact
    await blobs.delete(row["storage_key"])
    await artifact_store.add_event(db, row, "pending_gc", f"pending for more than {ttl_secs}s")
    metrics.EVENTS.inc()
    return True


async def gc_loop(state: ServerState) -> None:
    """``serve``'s background task: retention and the artifacts gauge whenever a complete
    stores an artifact, and a pending-upload GC pass every AETHER_PENDING_GC_INTERVAL_SECS
    (0 = no pending GC)."""
    interval = state.policy.pending_gc_interval_secs
    next_pass = time.monotonic()
    while True:
        due, requested = state.artifact_gc.take()
        if interval > 0 and time.monotonic() >= next_pass:
            next_pass = time.monotonic() + max(interval, 1)
            await _pending_pass(state)
        await _retain(state, due)
        state.artifact_gc.done(requested)
        timeout = None if interval <= 0 else max(0.0, next_pass - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.artifact_gc.wake.wait(), timeout)


async def _pending_pass(state: ServerState) -> None:
    try:
        report = await collect_pending(
            state.db, state.blobs, ttl_secs=state.policy.pending_ttl_secs
        )
    except AetherError as exc:  # storage or database down: try again next interval
        log.warning("pending GC failed: %s", exc.message)
        return
    if report.deleted_pending or report.purged_uploads:
        log.info("pending GC: %s", report.as_json())


async def _retain(state: ServerState, app_ids: set[str]) -> None:
    """Apply retention to ``app_ids``, then refresh the gauge; an app that fails is retried
    at the next wake-up."""
    for app_id in sorted(app_ids):
        try:
            await apply_retention(state, app_id)
        except AetherError as exc:
            log.warning("retention failed: %s", exc.message)
            state.artifact_gc.retry(app_id)
    try:
        await refresh_artifact_gauge(state)
    except AetherError as exc:
        log.warning("artifacts gauge not refreshed: %s", exc.message)


async def run_once(environ: dict[str, str], *, ttl_secs: int | None = None) -> GcReport:
    """What ``aether gc`` does: open the configured database and store, run one pass."""
    settings = ServerSettings.from_env(environ)
    policy = ArtifactPolicy.from_env(environ)
    db = open_database(settings.database_url, settings.data_dir)
    await db.open()
    try:
        await migrate(db)
        blobs = open_blob_store(
            BlobSettings.from_env(environ), public_url=settings.public_url or "http://127.0.0.1"
        )
        await blobs.open()
        try:
            ttl = policy.pending_ttl_secs if ttl_secs is None else ttl_secs
            return await collect_pending(db, blobs, ttl_secs=ttl)
        finally:
            await blobs.close()
    finally:
        await db.close()

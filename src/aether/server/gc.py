"""Pending-upload garbage collection: ``aether gc`` and a background task of ``aether serve``.

A row still ``pending`` after ``AETHER_PENDING_TTL_SECS`` is an upload that was abandoned:
its multipart upload is aborted, any object under its key (never verified) is deleted, the row
goes and a ``pending_gc`` event records it. Then the store drops multipart uploads and temporary
files older than the TTL that no pending row points at any more (a live upload is kept even
when the store reports a wrong start date for it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any

from aether.blobs import BlobStore, open_blob_store
from aether.errors import AetherError
from aether.server import artifact_metrics as metrics
from aether.server.artifact_retention import refresh_artifact_gauge
from aether.server.state import ServerState
from aether.settings import ArtifactPolicy, BlobSettings, ServerSettings
from aether.store import artifacts as artifact_store
from aether.store.clock import now_iso
from aether.store.database import Database, Row, open_database
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
    stale = await artifact_store.stale_pending(db, created_before=now_iso(-ttl_secs))
    deleted = 0
    for row in stale:
        if await _drop(db, blobs, row, ttl_secs):
            deleted += 1
    metrics.PENDING_GC_DELETED.inc(deleted)
    live = await artifact_store.pending_upload_ids(db)
    purged = await blobs.purge_stale(ttl_secs, keep=frozenset(live))
    return GcReport(deleted_pending=deleted, purged_uploads=purged, ttl_secs=ttl_secs)


async def _drop(db: Database, blobs: BlobStore, row: Row, ttl_secs: int) -> bool:
    if row["upload_id"]:
        await blobs.abort_multipart(row["storage_key"], row["upload_id"])
    if not await artifact_store.delete_pending(db, row["id"]):
        return False  # completed meanwhile: its object is now the stored artifact
    await blobs.delete(row["storage_key"])
    await artifact_store.add_event(
        db,
        artifact_id=row["id"],
        digest=row["digest"],
        app_name=row["app_name"],
        event="pending_gc",
        detail=f"pending for more than {ttl_secs}s",
    )
    metrics.EVENTS.inc()
    return True


async def pending_gc_loop(state: ServerState) -> None:
    """``serve``'s background task: a GC pass every AETHER_PENDING_GC_INTERVAL_SECS (0 = off)."""
    interval = state.policy.pending_gc_interval_secs
    while True:
        try:
            await refresh_artifact_gauge(state)
            if interval <= 0:
                return
            report = await collect_pending(
                state.db, state.blobs, ttl_secs=state.policy.pending_ttl_secs
            )
            if report.deleted_pending or report.purged_uploads:
                log.info("pending GC: %s", report.as_json())
        except AetherError as exc:  # storage or database down: try again next interval
            log.warning("pending GC failed: %s", exc.message)
        await asyncio.sleep(max(interval, 1))


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

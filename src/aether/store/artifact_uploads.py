"""Uploads in progress: ``artifact_uploads``, one row per app and digest.

Presign and multipart init write the row (its object key is under the uploading app's name,
so two apps' uploads of one digest never share an object); complete deletes it in the
transaction that stores the artifact or adds the app's reference. Rows nobody completes are
removed by the pending-upload GC.
"""

from __future__ import annotations

import uuid

from aether.store import newest_first
from aether.store.clock import now_iso
from aether.store.database import Executor, Row

# Shaped like an artifacts row (status pending), so listings and events take either.
_SELECT = (
    "SELECT u.id, u.app_id, u.digest, u.size_bytes, u.compression, u.storage_key, u.upload_id,"
    " u.created_at, NULL AS completed_at, 'pending' AS status, NULL AS signature,"
    " FALSE AS verified, 'archive' AS kind, NULL AS manifest_key, NULL AS sbom_key,"
    " NULL AS idempotency_key, 'nodejs' AS runtime, ap.name AS app_name"
    " FROM artifact_uploads u JOIN applications ap ON ap.id = u.app_id"
)


async def upsert(
    db: Executor,
    *,
    app_id: str,
    digest: str,
    size_bytes: int,
    compression: str,
    storage_key: str,
    upload_id: str | None = None,
) -> Row:
    """The app's upload of ``digest``, created or refreshed (a new multipart upload id, the
    announced size); returns it."""
    await db.execute(
        "INSERT INTO artifact_uploads (id, app_id, digest, size_bytes, compression, storage_key,"
        " upload_id, created_at) VALUES (:id, :app_id, :digest, :size_bytes, :compression,"
        " :storage_key, :upload_id, :now) ON CONFLICT (app_id, digest) DO UPDATE SET"
        " size_bytes = excluded.size_bytes, compression = excluded.compression,"
        " storage_key = excluded.storage_key,"
        " upload_id = COALESCE(excluded.upload_id, artifact_uploads.upload_id),"
        " created_at = excluded.created_at",
        {
            "id": str(uuid.uuid4()),
            "app_id": app_id,
            "digest": digest,
            "size_bytes": size_bytes,
            "compression": compression,
            "storage_key": storage_key,
            "upload_id": upload_id,
            "now": now_iso(),
        },
    )
    row = await get(db, app_id, digest)
    assert row is not None  # just written
    return row


async def get(db: Executor, app_id: str, digest: str) -> Row | None:
    return await db.fetch_one(
        f"{_SELECT} WHERE u.app_id = :app_id AND u.digest = :digest",
        {"app_id": app_id, "digest": digest},
    )


async def by_upload_id(db: Executor, digest: str, upload_id: str) -> Row | None:
    """The upload a multipart upload id belongs to (ids are the store's, unique per key)."""
    return await db.fetch_one(
        f"{_SELECT} WHERE u.digest = :digest AND u.upload_id = :upload_id",
        {"digest": digest, "upload_id": upload_id},
    )


async def delete(db: Executor, upload_row_id: str) -> bool:
    touched = await db.execute("DELETE FROM artifact_uploads WHERE id = :id", {"id": upload_row_id})
    return touched == 1


async def stale(db: Executor, *, created_before: str) -> list[Row]:
    return await db.fetch_all(
        f"{_SELECT} WHERE u.created_at < :before ORDER BY u.created_at", {"before": created_before}
    )


async def upload_ids(db: Executor) -> list[str]:
    """The multipart upload ids that uploads in progress still point at."""
    rows = await db.fetch_all("SELECT upload_id FROM artifact_uploads WHERE upload_id IS NOT NULL")
    return [row["upload_id"] for row in rows]


async def of_app(db: Executor, app_id: str) -> list[Row]:
    return await db.fetch_all(f"{_SELECT} WHERE u.app_id = :app_id", {"app_id": app_id})


async def list_page(
    db: Executor,
    *,
    limit: int,
    after: tuple[str, str] | None = None,
    app_name: str | None = None,
    owner: str | None = None,
    digest: str | None = None,
) -> list[Row]:
    """Newest first, like the artifacts listing; ``owner`` limits it to that user's apps."""
    equal = {"u.digest": digest, "ap.name": app_name, "ap.owner": owner}
    return await newest_first.page(db, _SELECT, "u", limit=limit, after=after, equal=equal)

"""Artifact rows: lookups by digest and listings."""

from __future__ import annotations

from aether.store.database import Executor, Row


async def get_by_digest(db: Executor, digest: str) -> Row | None:
    """The artifact row (any status) with its app's name, or None."""
    return await db.fetch_one(
        "SELECT a.*, ap.name AS app_name FROM artifacts a"
        " JOIN applications ap ON ap.id = a.app_id WHERE a.digest = :digest",
        {"digest": digest},
    )


async def get_stored(db: Executor, digest: str) -> Row | None:
    row = await get_by_digest(db, digest)
    return row if row is not None and row["status"] == "stored" else None

"""Rows the API tests need that other components normally create (stored artifacts)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from aether.store import artifact_references
from aether.store.clock import now_iso
from aether.store.database import Executor


async def insert_artifact(
    db: Executor,
    app_id: str,
    *,
    digest: str | None = None,
    status: str = "stored",
    verified: bool = False,
    size_bytes: int = 1234,
    compression: str = "zstd",
) -> dict[str, Any]:
    """A row in ``artifacts`` as the upload flow leaves it (for tests of other resources),
    with the app's reference to it when stored."""
    digest = digest or secrets.token_hex(32)
    row = {
        "id": str(uuid.uuid4()),
        "app_id": app_id,
        "digest": digest,
        "size_bytes": size_bytes,
        "compression": compression,
        "status": status,
        "storage_key": f"artifacts/x/{digest}/app.tar.zst",
        "verified": verified,
        "now": now_iso(),
    }
    await db.execute(
        "INSERT INTO artifacts (id, app_id, digest, size_bytes, compression, status,"
        " storage_key, verified, created_at, completed_at) VALUES (:id, :app_id, :digest,"
        " :size_bytes, :compression, :status, :storage_key, :verified, :now, :now)",
        row,
    )
    if status == "stored":  # uploaded for this app: it holds the digest
        await artifact_references.add(db, digest, app_id)
    return row

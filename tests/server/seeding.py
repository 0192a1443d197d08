"""Rows the API tests need that other components normally create (stored artifacts, running
deployments)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from aether.store import apps as app_store
from aether.store import artifact_references, rollouts
from aether.store.clock import now_iso
from aether.store.database import Database, Executor


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


async def insert_running_deployment(db: Database, app_name: str, *endpoints: str) -> str:
    """A cutover of app ``app_name`` (created when missing), as the worker makes one: a new
    deployment running on ``endpoints``, one healthy instance each; its id."""
    app = await app_store.get_app(db, app_name)
    app = app or await app_store.create_app(db, app_name, owner=None)
    artifact = await insert_artifact(db, app["id"])
    deployment_id = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO deployments (id, app_id, artifact_id, status, created_at)"
        " VALUES (:id, :app_id, :artifact_id, 'deploying', :now)",
        {"id": deployment_id, "app_id": app["id"], "artifact_id": artifact["id"], "now": now_iso()},
    )
    instances = [
        {
            "id": f"i{index}", "deployment_id": deployment_id, "state": "running",
            "health": "healthy", "restarts": 0, "started_at": None, "host": "here",
            "endpoint": endpoint,
        }
        for index, endpoint in enumerate(endpoints)
    ]  # fmt: skip
    await rollouts.mark_running(db, deployment_id, endpoints[0], instances_of=("worker", instances))
    return deployment_id

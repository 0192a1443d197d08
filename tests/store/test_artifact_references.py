"""Migration 0004: every stored artifact is held by the app it was uploaded for and by every
app that deployed it or has a release of it; pending rows become their app's uploads."""

from __future__ import annotations

import uuid

from aether.store import apps as app_store
from aether.store import artifact_references, artifact_uploads
from aether.store.clock import now_iso
from aether.store.migrate import migrate


async def _artifact(db, app_id: str, digest: str, status: str) -> str:
    artifact_id = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO artifacts (id, app_id, digest, size_bytes, status, storage_key, created_at)"
        " VALUES (:id, :app, :digest, 10, :status, :key, :now)",
        {
            "id": artifact_id,
            "app": app_id,
            "digest": digest,
            "status": status,
            "key": f"artifacts/x/{digest}/app.tar.zst",
            "now": now_iso(),
        },
    )
    return artifact_id


async def test_0004_back_fills_references_and_moves_pending_rows(database):
    db = database
    # back to the schema before 0004, with rows as that schema held them
    await db.execute("DROP TABLE artifact_references")
    await db.execute("DROP TABLE artifact_uploads")
    await db.execute("DELETE FROM schema_migrations WHERE version = 4")
    origin = await app_store.create_app(db, "origin", owner=None)
    runner = await app_store.create_app(db, "runner", owner=None)
    bystander = await app_store.create_app(db, "bystander", owner=None)
    stored = "a" * 64
    pending = "b" * 64
    artifact_id = await _artifact(db, origin["id"], stored, "stored")
    await _artifact(db, origin["id"], pending, "pending")
    await db.execute(
        "INSERT INTO deployments (id, app_id, artifact_id, status, created_at)"
        " VALUES (:id, :app, :artifact, 'superseded', :now)",
        {"id": str(uuid.uuid4()), "app": runner["id"], "artifact": artifact_id, "now": now_iso()},
    )

    applied = await migrate(db)

    assert [m.version for m in applied] == [4]
    assert await artifact_references.holds(db, stored, origin["id"])
    assert await artifact_references.holds(db, stored, runner["id"])
    assert not await artifact_references.holds(db, stored, bystander["id"])
    upload = await artifact_uploads.get(db, origin["id"], pending)
    assert upload is not None and upload["status"] == "pending"
    left = await db.fetch_value("SELECT COUNT(*) AS n FROM artifacts WHERE status = 'pending'")
    assert int(left) == 0


async def test_add_many_adds_each_digest_once_in_one_statement(database):
    db = database
    app = await app_store.create_app(db, "many", owner=None)
    digests = ["b" * 64, "c" * 64, "d" * 64]
    for digest in digests:
        await _artifact(db, app["id"], digest, "stored")
    await artifact_references.add(db, digests[0], app["id"])  # held already: kept as it is
    await artifact_references.add_many(db, [*digests, digests[1]], app["id"])
    await artifact_references.add_many(db, [], app["id"])
    for digest in digests:
        assert await artifact_references.holds(db, digest, app["id"])
    rows = await db.fetch_all(
        "SELECT digest FROM artifact_references WHERE app_id = :app ORDER BY digest",
        {"app": app["id"]},
    )
    assert [row["digest"] for row in rows] == digests

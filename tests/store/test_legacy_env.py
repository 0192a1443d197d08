"""Upgrading a database whose deployments hold env values in clear (before releases)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from aether.sealing import KeyRing, new_key
from aether.store import config_vars, open_database, releases
from aether.store.clock import now_iso
from aether.store.legacy_env import seal_legacy_env
from aether.store.migrate import available, migrate, render
from aether.store.secret_keys import ensure_primary

SECRET = "postgres://app:hunter2-very-secret@db/app"


async def _migrate_up_to(db, version: int) -> None:
    for migration in available():
        if migration.version <= version:
            async with db.transaction() as tx:
                for statement in render(migration.sql, db.dialect):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at)"
                    " VALUES (:v, :n, :now)",
                    {"v": migration.version, "n": migration.name, "now": now_iso()},
                )


async def _old_deployment(db, app_id: str, env: dict[str, str], status: str, at: str) -> str:
    artifact_id, deployment_id = str(uuid.uuid4()), str(uuid.uuid4())
    digest = uuid.uuid4().hex * 2
    await db.execute(
        "INSERT INTO artifacts (id, app_id, digest, size_bytes, status, storage_key, created_at)"
        " VALUES (:id, :app, :digest, 1, 'stored', 'k', :at)",
        {"id": artifact_id, "app": app_id, "digest": digest, "at": at},
    )
    await db.execute(
        "INSERT INTO deployments (id, app_id, artifact_id, status, env, created_at)"
        " VALUES (:id, :app, :artifact, :status, :env, :at)",
        {
            "id": deployment_id,
            "app": app_id,
            "artifact": artifact_id,
            "status": status,
            "env": json.dumps(env),
            "at": at,
        },
    )
    return deployment_id


async def test_clear_values_are_sealed_and_the_running_ones_become_config(database_url, tmp_path):
    db = open_database(database_url, tmp_path)
    await db.open()
    try:
        await db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )
        await _migrate_up_to(db, 2)
        app_id = str(uuid.uuid4())
        await db.execute(
            "INSERT INTO applications (id, name, created_at) VALUES (:id, 'notes', :now)",
            {"id": app_id, "now": now_iso()},
        )
        old = await _old_deployment(
            db, app_id, {"DB_PASSWORD": "old-one"}, "superseded", "2026-01-01T00:00:00Z"
        )
        running = await _old_deployment(
            db, app_id, {"DB_PASSWORD": SECRET, "MODE": "x"}, "running", "2026-01-02T00:00:00Z"
        )
        await migrate(db)
        ring = KeyRing.of(new_key())
        await ensure_primary(db, ring)
        assert await seal_legacy_env(db, ring) == 2
        assert await seal_legacy_env(db, ring) == 0  # nothing left in clear

        first = await releases.get_by_id(db, old)
        current = await releases.get_by_id(db, running)
        assert (first["version"], current["version"]) == (1, 2)
        sealed = config_vars.decode(first["overrides"])
        assert ring.unseal_env(sealed, app_id=app_id) == {"DB_PASSWORD": "old-one"}
        # The running release's values became config v1, so the next deploy keeps them.
        assert current["config_version"] == 1 and current["overrides"] == "{}"
        config = await config_vars.current(db, app_id)
        assert config.version == 1
        assert ring.unseal_env(config.vars, app_id=app_id) == {"DB_PASSWORD": SECRET, "MODE": "x"}
        shown = await db.fetch_value("SELECT env FROM deployments WHERE id = :id", {"id": running})
        assert sorted(json.loads(shown)) == ["DB_PASSWORD", "MODE"] and SECRET not in shown
        rows = await db.fetch_all("SELECT legacy_env FROM releases WHERE legacy_env IS NOT NULL")
        assert rows == []
    finally:
        await db.close()
    if database_url.startswith("sqlite"):
        # Nothing in clear anywhere in the file (WAL checkpointed on close).
        raw = b"".join(p.read_bytes() for p in Path(tmp_path).glob("aether.db*"))
        assert SECRET.encode() not in raw and b"old-one" not in raw

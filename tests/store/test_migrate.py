from __future__ import annotations

import pytest

from aether.store import open_database
from aether.store.database import DuplicateKey
from aether.store.migrate import available, migrate, pending

EXPECTED_TABLES = {
    "users",
    "api_tokens",
    "applications",
    "artifacts",
    "artifact_events",
    "artifact_layers",
    "artifact_references",
    "artifact_uploads",
    "deployments",
    "deployment_events",
    "public_keys",
    "app_leases",
    "idempotency_keys",
    "releases",
    "config_versions",
    "secrets_keys",
    "deployment_reports",
    "dashboard_sessions",
    "dashboard_links",
    "instances",
    "log_streams",
    "log_lines",
    "log_sources",
    "workers",
    "schema_migrations",
}


async def _columns(db) -> dict[str, list[str]]:
    if db.dialect == "sqlite":
        tables = await db.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        result = {}
        for row in tables:
            cols = await db.fetch_all(f"PRAGMA table_info({row['name']})")
            result[row["name"]] = sorted(c["name"] for c in cols)
        return result
    rows = await db.fetch_all(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    )
    result: dict[str, list[str]] = {}
    for row in rows:
        result.setdefault(row["table_name"], []).append(row["column_name"])
    return {name: sorted(cols) for name, cols in result.items()}


async def test_schema_has_no_drift_between_backends(tmp_path, fresh_postgres_url):
    sqlite = open_database(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)
    postgres = open_database(fresh_postgres_url, tmp_path)
    for db in (sqlite, postgres):
        await db.open()
        await migrate(db)
    try:
        sqlite_schema, postgres_schema = await _columns(sqlite), await _columns(postgres)
        assert set(sqlite_schema) == EXPECTED_TABLES
        assert sqlite_schema == postgres_schema
    finally:
        await sqlite.close()
        await postgres.close()


async def test_migrate_is_idempotent_and_versioned(database):
    assert await pending(database) == []
    assert await migrate(database) == []
    versions = await database.fetch_all("SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in versions] == [m.version for m in available()]


async def test_unique_violation_becomes_duplicate_key(database):
    params = {"id": "u1", "email": "a@example.com", "ts": "2026-01-01T00:00:00Z"}
    insert = "INSERT INTO users (id, email, created_at) VALUES (:id, :email, :ts)"
    await database.execute(insert, params)
    with pytest.raises(DuplicateKey):
        await database.execute(insert, {**params, "id": "u2"})


async def test_transaction_rolls_back_on_error(database):
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await tx.execute(
                "INSERT INTO users (id, email, created_at) VALUES ('u9', 'x@y', '2026')"
            )
            raise RuntimeError("boom")
    assert await database.fetch_one("SELECT id FROM users WHERE id = 'u9'") is None

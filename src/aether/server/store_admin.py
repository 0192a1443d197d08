"""Operator actions on the metadata store without a running API: migrate, tokens.

``aether migrate`` and ``aether token`` call these; each opens the configured database
(SQLite in the data dir or DATABASE_URL), does one thing and closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aether.errors import ConfigError, NotFound
from aether.server.auth import bootstrap_specs
from aether.settings import ServerSettings
from aether.store import open_database
from aether.store import tokens as token_store
from aether.store.database import Database
from aether.store.migrate import applied_versions, available, migrate, pending

T = TypeVar("T")


def with_database(settings: ServerSettings, action: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = open_database(settings.database_url, settings.data_dir)
        await db.open()
        try:
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(run())


async def _require_schema(db: Database) -> None:
    missing = await pending(db)
    if missing:
        raise ConfigError(
            f"the database schema is behind ({len(missing)} migration(s) pending);"
            " run `aether migrate` first"
        )


def apply_migrations(settings: ServerSettings) -> dict[str, Any]:
    async def action(db: Database) -> dict[str, Any]:
        applied = await migrate(db)
        return {
            "database": db.dialect,
            "applied": [f"{m.version:04d}_{m.name}" for m in applied],
            "version": max(await applied_versions(db), default=0),
        }

    return with_database(settings, action)


def migration_status(settings: ServerSettings) -> dict[str, Any]:
    async def action(db: Database) -> dict[str, Any]:
        done = await applied_versions(db)
        return {
            "database": db.dialect,
            "applied": [f"{m.version:04d}_{m.name}" for m in available() if m.version in done],
            "pending": [f"{m.version:04d}_{m.name}" for m in available() if m.version not in done],
        }

    return with_database(settings, action)


def create_token(
    settings: ServerSettings, *, name: str, role: str, email: str | None, ttl_secs: int | None
) -> dict[str, Any]:
    async def action(db: Database) -> dict[str, Any]:
        await _require_schema(db)
        issued = await token_store.create_token(
            db, name=name, role=role, email=email, ttl_secs=ttl_secs
        )
        return issued.as_json()

    return with_database(settings, action)


def list_tokens(settings: ServerSettings, *, include_revoked: bool) -> list[dict[str, Any]]:
    async def action(db: Database) -> list[dict[str, Any]]:
        await _require_schema(db)
        await token_store.sync_bootstrap_tokens(db, bootstrap_specs(settings))
        return await token_store.list_tokens(db, include_revoked=include_revoked)

    return with_database(settings, action)


def revoke_token(settings: ServerSettings, token_id: str) -> dict[str, Any]:
    async def action(db: Database) -> dict[str, Any]:
        await _require_schema(db)
        if not await token_store.revoke_token(db, token_id):
            raise NotFound(f"no live token with id {token_id}; see `aether token list`")
        return {"revoked": token_id}

    return with_database(settings, action)

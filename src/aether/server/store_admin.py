"""Operator actions on the metadata store without a running API: migrate, tokens, the
secrets key.

``aether migrate``, ``aether token`` and ``aether admin`` call these; each opens the
configured database (SQLite in the data dir or DATABASE_URL), does one thing and closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aether.errors import ConfigError, NotFound
from aether.sealing import KeyRing, key_source
from aether.server import secrets_admin
from aether.server.auth import bootstrap_specs
from aether.server.secrets_admin import Say
from aether.settings import ServerSettings
from aether.store import open_database, secret_keys
from aether.store import tokens as token_store
from aether.store.database import Database
from aether.store.legacy_env import seal_legacy_env
from aether.store.migrate import applied_versions, available, migrate, pending
from aether.store.secret_keys import ensure_primary

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


def keyring(settings: ServerSettings) -> KeyRing:
    """The ring ``aether serve`` would use with these settings."""
    secrets = settings.secrets
    return KeyRing(key_source(secrets.keys, secrets.key_file, create=secrets.create_key_file))


def apply_migrations(settings: ServerSettings) -> dict[str, Any]:
    """Migrate, then seal the env values older deployments held in clear."""

    async def action(db: Database) -> dict[str, Any]:
        applied = await migrate(db)
        ring = keyring(settings)
        await ensure_primary(db, ring)
        return {
            "database": db.dialect,
            "applied": [f"{m.version:04d}_{m.name}" for m in applied],
            "version": max(await applied_versions(db), default=0),
            "sealed_releases": await seal_legacy_env(db, ring),
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


def rotate_secrets_key(settings: ServerSettings, *, say: Say) -> dict[str, Any]:
    async def action(db: Database) -> dict[str, Any]:
        await _require_schema(db)
        ring = keyring(settings)
        await ensure_primary(db, ring)
        return await secrets_admin.rotate(db, ring, say=say)

    return with_database(settings, action)


def secrets_keys(settings: ServerSettings) -> dict[str, Any]:
    """The keys the database knows and whether this machine's ring holds each."""

    async def action(db: Database) -> dict[str, Any]:
        await _require_schema(db)
        ring = keyring(settings)
        rows = await secret_keys.list_keys(db)
        for row in rows:
            row["held_here"] = row["key_id"] in ring.key_ids
        return {"source": ring.source.description, "keys": rows}

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

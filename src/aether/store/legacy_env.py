"""Sealing the env values that deployments held in clear before releases existed.

Migration 0003 made every old deployment the rollout of a release of its own and moved its
``env`` (values in clear) to ``releases.legacy_env``; SQL cannot encrypt, so the server seals
them at its next start (and ``aether migrate`` does) with :func:`seal_legacy_env`: each
becomes the release's one-off overrides, sealed, and the deployment's ``env`` its names and
fingerprints. The app's current release's values also become the app's config (version 1),
so the first deploy after the upgrade keeps the environment the app runs with.
One transaction per release: an interrupted run goes on where it stopped. On SQLite the file
is then vacuumed so that no freed page keeps the old text; on PostgreSQL, old row versions
stay in the table files until their space is reused (docs/architecture.md says how to
rewrite them).
"""

from __future__ import annotations

import json

from aether.sealing import KeyRing, SealedEnv
from aether.store import config_vars
from aether.store.database import Database, Executor, Row
from aether.store.secret_keys import sealing_key_id


async def seal_legacy_env(db: Database, ring: KeyRing) -> int:
    """Seal every release's values held in clear; how many releases were sealed."""
    rows = await db.fetch_all(
        "SELECT id, app_id FROM releases WHERE legacy_env IS NOT NULL ORDER BY app_id, version"
    )
    for row in rows:
        async with db.transaction() as tx:
            await _seal_one(tx, row["id"], ring)
    for app_id in sorted({row["app_id"] for row in rows}):
        async with db.transaction() as tx:
            await _adopt_as_config(tx, app_id)
    if rows and db.dialect == "sqlite":
        # Freed pages and the write-ahead log would still hold the old text: rewrite the file.
        await db.execute("VACUUM")
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return len(rows)


async def _seal_one(tx: Executor, release_id: str, ring: KeyRing) -> None:
    row = await tx.fetch_one(
        "SELECT app_id, legacy_env FROM releases WHERE id = :id AND legacy_env IS NOT NULL",
        {"id": release_id},
    )
    if row is None:
        return  # another server sealed it meanwhile
    kid = await sealing_key_id(tx, ring)
    plain = {str(k): str(v) for k, v in json.loads(row["legacy_env"]).items()}
    sealed = {
        name: ring.seal(value, kid=kid, app_id=row["app_id"], name=name)
        for name, value in sorted(plain.items())
    }
    fingerprints = json.dumps({name: box["fp"] for name, box in sealed.items()}, sort_keys=True)
    await tx.execute(
        "UPDATE releases SET overrides = :overrides, env = :env, legacy_env = NULL WHERE id = :id",
        {"id": release_id, "overrides": config_vars.encode(sealed), "env": fingerprints},
    )
    await tx.execute(
        "UPDATE deployments SET env = :env WHERE release_id = :id",
        {"id": release_id, "env": fingerprints},
    )


async def _adopt_as_config(tx: Executor, app_id: str) -> None:
    """An app without config vars takes its current release's one-off values as config v1;
    that release then runs config v1 without overrides (the same environment)."""
    if await tx.fetch_value(
        "SELECT config_version FROM applications WHERE id = :id", {"id": app_id}
    ):
        return
    current = await _current_release(tx, app_id)
    if current is None or current["overrides"] in ("{}", ""):
        return
    overrides: SealedEnv = config_vars.decode(current["overrides"])
    version = await config_vars.add_version(
        tx, app_id, overrides, description="From the running release's --env", created_by=None
    )
    await tx.execute(
        "UPDATE releases SET config_version = :version, overrides = '{}' WHERE id = :id",
        {"id": current["id"], "version": version},
    )


async def _current_release(tx: Executor, app_id: str) -> Row | None:
    """The release of the app's newest running deployment, else of its newest one."""
    return await tx.fetch_one(
        "SELECT r.id, r.overrides FROM deployments d JOIN releases r ON r.id = d.release_id"
        " WHERE d.app_id = :app ORDER BY CASE WHEN d.status = 'running' THEN 0 ELSE 1 END,"
        " d.created_at DESC, d.id DESC LIMIT 1",
        {"app": app_id},
    )

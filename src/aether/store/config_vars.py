"""An app's config vars: immutable, numbered versions and the app's pointer to its current one.

A change (set, unset, import) writes a whole new version — values sealed, see
:mod:`aether.sealing` — and moves ``applications.config_version`` to it; a rollback moves the
pointer back to the version its target release ran with. Version 0 is the empty config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aether.sealing import KeyRing, SealedEnv
from aether.store.clock import now_iso
from aether.store.database import Executor


@dataclass(frozen=True)
class Snapshot:
    version: int
    vars: SealedEnv


@dataclass(frozen=True)
class Change:
    """What a change did: the new snapshot's vars and the names it set or unset."""

    vars: SealedEnv
    changed: list[str]
    not_set: list[str]  # names asked to unset that were not set


def decode(raw: str | None) -> SealedEnv:
    if not raw:
        return {}
    value: SealedEnv = json.loads(raw)
    return value


def encode(vars_: Mapping[str, object]) -> str:
    return json.dumps(vars_, sort_keys=True, separators=(",", ":"))


async def current(db: Executor, app_id: str) -> Snapshot:
    version = await db.fetch_value(
        "SELECT config_version FROM applications WHERE id = :id", {"id": app_id}
    )
    return await snapshot(db, app_id, int(version or 0))


async def snapshot(db: Executor, app_id: str, version: int) -> Snapshot:
    if version == 0:
        return Snapshot(0, {})
    raw = await db.fetch_value(
        "SELECT vars FROM config_versions WHERE app_id = :app AND version = :version",
        {"app": app_id, "version": version},
    )
    return Snapshot(version, decode(raw))


def apply_changes(
    base: SealedEnv,
    *,
    set_vars: Mapping[str, str],
    unset: Sequence[str],
    ring: KeyRing,
    kid: str,
    app_id: str,
) -> Change:
    """The vars after setting and unsetting; a value equal to the stored one is kept as it
    is (same box, same fingerprint), so setting it again changes nothing."""
    result = dict(base)
    changed: list[str] = []
    for name, value in set_vars.items():
        stored = result.get(name)
        if stored is not None and ring.unseal(stored, app_id=app_id, name=name) == value:
            continue
        result[name] = ring.seal(value, kid=kid, app_id=app_id, name=name)
        changed.append(name)
    not_set = [name for name in unset if name not in result]
    for name in unset:
        if result.pop(name, None) is not None:
            changed.append(name)
    return Change(dict(sorted(result.items())), changed, not_set)


async def add_version(
    tx: Executor, app_id: str, vars_: SealedEnv, *, description: str, created_by: str | None
) -> int:
    """Write the next version and make it the app's current one."""
    latest = await tx.fetch_value(
        "SELECT MAX(version) FROM config_versions WHERE app_id = :app", {"app": app_id}
    )
    version = int(latest or 0) + 1
    await tx.execute(
        "INSERT INTO config_versions (app_id, version, vars, description, created_by,"
        " created_at) VALUES (:app, :version, :vars, :description, :created_by, :now)",
        {
            "app": app_id,
            "version": version,
            "vars": encode(vars_),
            "description": description,
            "created_by": created_by,
            "now": now_iso(),
        },
    )
    await point_to(tx, app_id, version)
    return version


async def point_to(tx: Executor, app_id: str, version: int) -> None:
    await tx.execute(
        "UPDATE applications SET config_version = :version WHERE id = :id",
        {"id": app_id, "version": version},
    )

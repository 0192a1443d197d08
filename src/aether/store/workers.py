"""Workers: registration, heartbeats and who is alive.

Each worker upserts its row at start and on every heartbeat, moving ``expires_at`` ahead by
its own ``AETHER_WORKER_DEAD_SECS``; a row past ``expires_at`` is a worker that is gone (killed,
its host down, cut off from the database). Leases of a gone worker are taken over at once
(:mod:`aether.store.leases`); the deploy wait and ``aether status`` ask
:func:`has_live_worker` whether anything will pick a deployment up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aether.store.clock import now_iso
from aether.store.database import Executor, Row

# Rows of workers gone longer than this are deleted at the next heartbeat of any worker.
FORGET_AFTER_SECS = 7 * 86400


@dataclass(frozen=True)
class Heartbeat:
    id: str
    host: str
    runtime: str
    version: str
    advertise_addr: str | None = None
    isolation: Mapping[str, Any] = field(default_factory=dict)
    apps: Sequence[str] = ()


async def heartbeat(db: Executor, beat: Heartbeat, *, dead_secs: float) -> None:
    """Register or refresh the worker's row."""
    now = now_iso()
    await db.execute(
        "INSERT INTO workers (id, host, runtime, version, advertise_addr, isolation, apps,"
        " started_at, last_seen, expires_at, stopped_at)"
        " VALUES (:id, :host, :runtime, :version, :addr, :isolation, :apps, :now, :now,"
        " :expires, NULL) ON CONFLICT (id) DO UPDATE SET host = excluded.host,"
        " runtime = excluded.runtime, version = excluded.version,"
        " advertise_addr = excluded.advertise_addr, isolation = excluded.isolation,"
        " apps = excluded.apps, last_seen = excluded.last_seen,"
        " expires_at = excluded.expires_at, stopped_at = NULL,"
        " started_at = CASE WHEN workers.stopped_at IS NULL AND workers.expires_at >= :now"
        " THEN workers.started_at ELSE excluded.started_at END",
        {
            "id": beat.id,
            "host": beat.host,
            "runtime": beat.runtime,
            "version": beat.version,
            "addr": beat.advertise_addr,
            "isolation": json.dumps(dict(beat.isolation), sort_keys=True),
            "apps": json.dumps(sorted(beat.apps)),
            "now": now,
            "expires": now_iso(dead_secs),
        },
    )
    await db.execute(
        "DELETE FROM workers WHERE expires_at < :old", {"old": now_iso(-FORGET_AFTER_SECS)}
    )


async def mark_stopped(db: Executor, worker_id: str, *, keep_leases: bool) -> None:
    """A worker that stopped cleanly. With ``keep_leases`` (its apps run on, and a restarted
    worker with its identity adopts them) its leases stay until ``expires_at`` as usual."""
    now = now_iso()
    await db.execute(
        "UPDATE workers SET stopped_at = :now,"
        " expires_at = CASE WHEN :keep = 1 THEN expires_at ELSE :now END WHERE id = :id",
        {"now": now, "id": worker_id, "keep": 1 if keep_leases else 0},
    )


def _shape(row: Row, now: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "host": row["host"],
        "runtime": row["runtime"],
        "version": row["version"],
        "advertise_addr": row["advertise_addr"],
        "isolation": json.loads(row["isolation"] or "{}"),
        "apps": json.loads(row["apps"] or "[]"),
        "started_at": row["started_at"],
        "last_seen": row["last_seen"],
        "alive": row["stopped_at"] is None and row["expires_at"] >= now,
        "stopped_at": row["stopped_at"],
    }


async def list_workers(db: Executor) -> list[dict[str, Any]]:
    """Every worker seen lately, live ones first, then by id."""
    now = now_iso()
    rows = await db.fetch_all("SELECT * FROM workers ORDER BY id")
    shaped = [_shape(row, now) for row in rows]
    return sorted(shaped, key=lambda w: (not w["alive"], w["id"]))


async def has_live_worker(db: Executor, runtime: str) -> bool:
    """Whether a worker of ``runtime`` (local, kubernetes) is alive now: a pending deployment
    will be picked up. For the deploy wait and ``aether status``."""
    found = await db.fetch_value(
        "SELECT COUNT(*) FROM workers WHERE runtime = :runtime AND expires_at >= :now"
        " AND stopped_at IS NULL",
        {"runtime": runtime, "now": now_iso()},
    )
    return bool(found)


def no_live_worker_message(runtime: str) -> str:
    return f"no live worker for runtime {runtime} — the deployment will start when one is"

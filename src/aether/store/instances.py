"""An app's instances (processes or pods) as the worker that holds the app last saw them.

The worker replaces an app's rows in one transaction whenever what it observes changes, so
every API replica reads the same answer (``aether ps``/``status``), and the Host-header router
spreads an app's requests over the endpoints of its healthy instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aether.store import wakeups
from aether.store.clock import now_iso
from aether.store.database import Database, Executor, Row

COLUMNS = (
    "id",
    "deployment_id",
    "state",
    "health",
    "restarts",
    "started_at",
    "host",
    "worker",
    "endpoint",
)


async def replace(
    db: Database, app_id: str, worker: str, instances: Sequence[Mapping[str, Any]]
) -> None:
    """The app's instances are now ``instances`` (each with the keys of COLUMNS but worker)."""
    async with db.transaction() as tx:
        await write(tx, app_id, worker, instances)
    wakeups.poke(instances_topic(app_id))


async def write(
    tx: Executor, app_id: str, worker: str, instances: Sequence[Mapping[str, Any]]
) -> None:
    """:func:`replace` inside the caller's transaction (the caller pokes after the commit)."""
    now = now_iso()
    await tx.execute("DELETE FROM instances WHERE app_id = :app_id", {"app_id": app_id})
    for item in instances:
        await tx.execute(
            "INSERT INTO instances (app_id, id, deployment_id, state, health, restarts,"
            " started_at, host, worker, endpoint, seen_at) VALUES (:app_id, :id,"
            " :deployment_id, :state, :health, :restarts, :started_at, :host, :worker,"
            " :endpoint, :seen_at)",
            {**item, "app_id": app_id, "worker": worker, "seen_at": now},
        )


def instances_topic(app_id: str) -> str:
    """Poked when the app's instances were recorded anew (the router's endpoints move)."""
    return f"instances:{app_id}"


async def of_app(db: Executor, app_id: str) -> list[Row]:
    """The app's instances with their release number and ``seen_at`` (when the worker last
    wrote them), oldest release first."""
    columns = ", ".join(f"i.{name}" for name in COLUMNS)
    return await db.fetch_all(
        f"SELECT {columns}, i.seen_at, r.version AS release FROM instances i"
        " LEFT JOIN deployments d ON d.id = i.deployment_id"
        " LEFT JOIN releases r ON r.id = d.release_id"
        " WHERE i.app_id = :app_id ORDER BY r.version, i.id",
        {"app_id": app_id},
    )


async def lease_of(db: Executor, app_id: str) -> Row | None:
    """``{holder, expires_at}`` of the worker that holds the app, if one ever did."""
    return await db.fetch_one(
        "SELECT holder, expires_at FROM app_leases WHERE app_id = :app_id", {"app_id": app_id}
    )


async def healthy_endpoints(db: Executor, app_id: str, deployment_id: str) -> list[str]:
    """Endpoints of the deployment's instances that are running and answered their check."""
    rows = await db.fetch_all(
        "SELECT endpoint FROM instances WHERE app_id = :app_id AND deployment_id = :deployment_id"
        " AND state = 'running' AND health = 'healthy' AND endpoint IS NOT NULL ORDER BY id",
        {"app_id": app_id, "deployment_id": deployment_id},
    )
    return [row["endpoint"] for row in rows]

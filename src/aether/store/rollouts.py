"""Rollouts as the worker sees them: apps and their deployments, the release a deployment
runs, status transitions and events (and the Host-header proxy's running endpoint).

Transitions are conditional updates so a late or duplicate worker can never move a deployment
backwards: ``pending → deploying → running | failed``; when a deployment runs, the older ones
of its app still marked active become ``superseded`` in the same transaction. Which worker
handles an app is :mod:`aether.store.leases`. On PostgreSQL an insert trigger NOTIFYs
``aether_deployments`` with the app id so workers wake at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from aether.store import config_vars, instances, releases, wakeups
from aether.store.clock import now_iso
from aether.store.database import Database, Executor, Row
from aether.store.deployments import add_event

NOTIFY_CHANNEL = "aether_deployments"
_TRIGGER_LOCK_ID = 0x4145544853  # serialises concurrent workers creating the trigger
_ACTIVE = "('pending', 'deploying', 'running')"


async def ensure_notify_trigger(db: Database) -> None:
    """PostgreSQL: NOTIFY on every new deployment (idempotent; a no-op on SQLite)."""
    if db.dialect != "postgresql":
        return
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock(:id)", {"id": _TRIGGER_LOCK_ID})
        await tx.execute(
            "CREATE OR REPLACE FUNCTION aether_notify_deployment() RETURNS trigger AS $body$"
            f" BEGIN PERFORM pg_notify('{NOTIFY_CHANNEL}', NEW.app_id); RETURN NEW; END"
            " $body$ LANGUAGE plpgsql"
        )
        await tx.execute(
            "CREATE OR REPLACE TRIGGER aether_deployment_inserted AFTER INSERT ON deployments"
            " FOR EACH ROW EXECUTE FUNCTION aether_notify_deployment()"
        )


# --- what to reconcile -----------------------------------------------------------------------


async def list_apps(db: Executor) -> list[Row]:
    """Every app with its lease: ``id, name, holder, expires_at`` (the lease ends early when
    its holder's heartbeat ran out)."""
    return await db.fetch_all(
        "SELECT a.id, a.name, l.holder,"
        " CASE WHEN w.expires_at IS NOT NULL AND w.expires_at < l.expires_at"
        " THEN w.expires_at ELSE l.expires_at END AS expires_at"
        " FROM applications a LEFT JOIN app_leases l ON l.app_id = a.id"
        " LEFT JOIN workers w ON w.id = l.holder ORDER BY a.name"
    )


async def plan_rows(db: Executor, app_id: str) -> list[Row]:
    """The deployments the plan needs, oldest first: every active one, the newest superseded
    one (the fallback when everything newer failed) and the newest failed one (what a restore
    undoes; where the worker says it keeps a workload when every release failed)."""
    active = await db.fetch_all(
        f"SELECT id, status, created_at FROM deployments WHERE app_id = :app_id"
        f" AND status IN {_ACTIVE}",
        {"app_id": app_id},
    )
    newest = [
        row
        for status in ("superseded", "failed")
        for row in await db.fetch_all(
            "SELECT id, status, created_at FROM deployments WHERE app_id = :app_id"
            " AND status = :status ORDER BY created_at DESC, id DESC LIMIT 1",
            {"app_id": app_id, "status": status},
        )
    ]
    return sorted(active + newest, key=lambda r: (r["created_at"], r["id"]))


async def has_event(db: Executor, deployment_id: str, phase: str) -> bool:
    """Whether the deployment already has an event of ``phase`` (notes said once)."""
    found = await db.fetch_value(
        "SELECT 1 FROM deployment_events WHERE deployment_id = :id AND phase = :phase LIMIT 1",
        {"id": deployment_id, "phase": phase},
    )
    return found is not None


async def pending_ids(db: Executor) -> set[str]:
    """Ids of deployments no worker has started yet (the SQLite loop's cheap wake-up check)."""
    rows = await db.fetch_all("SELECT id FROM deployments WHERE status = 'pending'")
    return {row["id"] for row in rows}


async def release_row(db: Executor, deployment_id: str) -> Row | None:
    """A deployment with what the runtime needs: app name, artifact, active keys, and its
    release's environment still sealed (``config``: the config version's vars,
    ``overrides``: the one-off ones; the worker opens them)."""
    row = await db.fetch_one(
        "SELECT d.id, d.app_id, d.status, d.start_command, d.replicas, d.health_path,"
        " ap.name AS app_name, ap.owner AS app_owner,"
        " ar.digest, ar.storage_key, ar.compression, ar.signature,"
        " r.version AS release, r.node_version, r.overrides, c.vars AS config"
        " FROM deployments d JOIN applications ap ON ap.id = d.app_id"
        " JOIN artifacts ar ON ar.id = d.artifact_id"
        " LEFT JOIN releases r ON r.id = d.release_id"
        " LEFT JOIN config_versions c ON c.app_id = r.app_id AND c.version = r.config_version"
        " WHERE d.id = :id",
        {"id": deployment_id},
    )
    if row is None:
        return None
    keys = await db.fetch_all(
        "SELECT public_key_hex FROM public_keys WHERE app_id = :app_id AND active = :yes"
        " ORDER BY created_at",
        {"app_id": row["app_id"], "yes": True},
    )
    row["public_keys"] = [k["public_key_hex"] for k in keys]
    row["config"] = config_vars.decode(row["config"])
    row["overrides"] = config_vars.decode(row["overrides"])
    return row


async def scaled_from(db: Executor, deployment_id: str) -> str | None:
    """The app's running deployment when ``deployment_id`` rolls out a release that differs
    from that one's only in its replica count (a scale): the runtime may keep the running
    instances and start or stop only the difference. None otherwise (a restart, too, wants
    every instance replaced)."""
    new = await db.fetch_one(
        "SELECT app_id, release_id, reason FROM deployments WHERE id = :id", {"id": deployment_id}
    )
    if new is None or new["release_id"] is None or new["reason"] == "restart":
        return None
    running = await db.fetch_one(
        "SELECT id, release_id FROM deployments WHERE app_id = :app_id AND status = 'running'"
        " AND id <> :id ORDER BY created_at DESC, id DESC LIMIT 1",
        {"app_id": new["app_id"], "id": deployment_id},
    )
    if running is None or running["release_id"] in (None, new["release_id"]):
        return None
    wanted = await releases.get_by_id(db, new["release_id"])
    serving = await releases.get_by_id(db, running["release_id"])
    if wanted is None or serving is None:
        return None
    a, b = releases.ReleaseSpec.of(wanted), releases.ReleaseSpec.of(serving)
    return str(running["id"]) if replace(a, replicas=0) == replace(b, replicas=0) else None


async def running_endpoint(db: Executor, app_name: str) -> Row | None:
    """``{app_id, deployment_id, endpoint}`` of the app's newest running deployment (both
    None when nothing runs); None when there is no such app. The Host-header proxy's lookup."""
    app = await db.fetch_one("SELECT id FROM applications WHERE name = :name", {"name": app_name})
    if app is None:
        return None
    running = await db.fetch_one(
        "SELECT id, endpoint, replicas FROM deployments WHERE app_id = :app_id"
        " AND status = 'running'"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        {"app_id": app["id"]},
    )
    return {
        "app_id": app["id"],
        "deployment_id": running["id"] if running else None,
        "endpoint": running["endpoint"] if running else None,
        "replicas": running["replicas"] if running else None,
    }


async def serving_endpoints(db: Executor, app_name: str) -> Row | None:
    """Where the app's requests go: ``endpoints``, those of the healthy instances of its
    newest running deployment, else that deployment's endpoint (the worker records
    instances just after the cutover), empty when nothing runs; ``stopped`` when that
    deployment runs no instance (scaled to 0). None when there is no such app."""
    target = await running_endpoint(db, app_name)
    if target is None:
        return None
    if target["deployment_id"] is None:
        return {"endpoints": [], "stopped": False}
    healthy = await instances.healthy_endpoints(db, target["app_id"], target["deployment_id"])
    fallback = [target["endpoint"]] if target["endpoint"] else []
    return {"endpoints": healthy or fallback, "stopped": target["replicas"] == 0}


# --- transitions -------------------------------------------------------------------------------


record_event = add_event  # the same write (and wake-up) as the API's own events


async def mark_deploying(db: Executor, deployment_id: str) -> bool:
    """pending → deploying (a deployment already deploying keeps its start time)."""
    touched = await db.execute(
        "UPDATE deployments SET status = 'deploying', rollout_started_at = :now"
        " WHERE id = :id AND status = 'pending'",
        {"id": deployment_id, "now": now_iso()},
    )
    wakeups.poke(wakeups.deployment_topic(deployment_id))
    return touched > 0


async def mark_running(
    db: Database,
    deployment_id: str,
    endpoint: str | None,
    *,
    instances_of: tuple[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[str]:
    """→ running with its endpoint; older active deployments of the app → superseded (one
    transaction, so the proxy never sees zero or two running). With ``instances_of`` (the
    worker, the instances it runs), the app's instance rows are written in the same
    transaction: the router spreads requests over all of them from the cutover on, not
    over the first alone until the worker's next write. The superseded ids."""
    now = now_iso()
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            "SELECT app_id, created_at FROM deployments WHERE id = :id", {"id": deployment_id}
        )
        if row is None:
            return []
        await tx.execute(
            "UPDATE deployments SET status = 'running', endpoint = :endpoint,"
            " failure_reason = NULL, rollout_completed_at = COALESCE(rollout_completed_at, :now),"
            " rollout_started_at = COALESCE(rollout_started_at, :now)"
            " WHERE id = :id AND status <> 'failed'",
            {"id": deployment_id, "endpoint": endpoint, "now": now},
        )
        superseded = await _supersede_older(tx, row["app_id"], row["created_at"], deployment_id)
        if instances_of is not None:
            await instances.write(tx, row["app_id"], *instances_of)
    for changed in (deployment_id, *superseded):
        wakeups.poke(wakeups.deployment_topic(changed))
    if instances_of is not None:
        wakeups.poke(instances.instances_topic(row["app_id"]))
    return superseded


async def _supersede_older(tx: Executor, app_id: str, created_at: str, keep: str) -> list[str]:
    params = {"app_id": app_id, "created_at": created_at, "keep": keep}
    where = (
        f" WHERE app_id = :app_id AND id <> :keep AND status IN {_ACTIVE}"
        " AND (created_at < :created_at OR (created_at = :created_at AND id < :keep))"
    )
    stale = await tx.fetch_all("SELECT id FROM deployments" + where, params)
    if stale:
        await tx.execute("UPDATE deployments SET status = 'superseded'" + where, params)
    return [r["id"] for r in stale]


async def supersede(db: Executor, deployment_ids: tuple[str, ...] | list[str]) -> None:
    for deployment_id in deployment_ids:
        await db.execute(
            f"UPDATE deployments SET status = 'superseded' WHERE id = :id AND status IN {_ACTIVE}",
            {"id": deployment_id},
        )
        wakeups.poke(wakeups.deployment_topic(deployment_id))


async def mark_failed(db: Executor, deployment_id: str, reason: str) -> bool:
    touched = await db.execute(
        "UPDATE deployments SET status = 'failed', failure_reason = :reason,"
        " rollout_completed_at = :now WHERE id = :id AND status <> 'failed'",
        {"id": deployment_id, "reason": reason[:4000], "now": now_iso()},
    )
    wakeups.poke(wakeups.deployment_topic(deployment_id))
    return touched > 0


async def deployment_status(db: Executor, deployment_id: str) -> str | None:
    status: str | None = await db.fetch_value(
        "SELECT status FROM deployments WHERE id = :id", {"id": deployment_id}
    )
    return status

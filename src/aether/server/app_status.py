"""What ``aether ps``/``status`` show of an app: the release running, its instances as the
worker that holds the app last recorded them, the last rollout's outcome, and whether a
worker is looking after the app at all.

Every API replica answers the same: it is all read from the database. When no live worker
holds the app, the instances' last known states are not shown as if they were current: each
reads ``unknown`` and the answer says why.
"""

from __future__ import annotations

from datetime import timedelta

from aether.models import AppStatus, Instance, WorkerNotice, deployment_from
from aether.server.state import ServerState
from aether.store import instances as instance_store
from aether.store import workers
from aether.store.clock import now_iso, parse_iso
from aether.store.database import Row
from aether.store.deployments import newest_of_app

# Rows older than this were not refreshed by a worker (it writes them at least every 15 s).
STALE_SECS = 60.0


async def app_status(state: ServerState, app: Row) -> AppStatus:
    db = state.db
    running = await newest_of_app(db, app["id"], running=True)
    newest = await newest_of_app(db, app["id"])
    rows = await instance_store.of_app(db, app["id"])
    notice = await _worker_notice(state, app, rows, newest)
    return {
        "app": app["name"],
        "release": running["release"] if running else None,
        "replicas": int(running["replicas"]) if running else 0,
        "instances": [_instance(row, live=notice["live"]) for row in rows],
        "last_rollout": deployment_from(newest, state.app_url(app["name"])) if newest else None,
        "worker": notice,
    }


def _instance(row: Row, *, live: bool) -> Instance:
    return {
        "id": row["id"],
        "deployment_id": row["deployment_id"],
        "release": row["release"],
        "state": row["state"] if live else "unknown",
        "health": row["health"] if live else "unknown",
        "restarts": int(row["restarts"]),
        "started_at": row["started_at"],
        "host": row["host"],
        "worker": row["worker"],
    }


async def _worker_notice(
    state: ServerState, app: Row, rows: list[Row], newest: Row | None
) -> WorkerNotice:
    if newest is None:
        return {"live": True, "message": None}  # never deployed: nothing to look after
    runtime = state.settings.runtime
    if not await workers.has_live_worker(state.db, runtime):
        return {
            "live": False,
            "message": f"no live worker for runtime {runtime}: the instances shown are as a"
            " worker last saw them, not now; a new deployment will start when one is running",
        }
    lease = await instance_store.lease_of(state.db, app["id"])
    now = now_iso()
    if lease is None or lease["expires_at"] < now:
        who = (
            f" (the last, {lease['holder']}, was last seen {lease['expires_at']})" if lease else ""
        )
        return {
            "live": False,
            "message": "no live worker holds this app" + who + ": its instances are not"
            " being watched, and a new deployment will start when a worker is running",
        }
    seen = max((row["seen_at"] for row in rows), default=None)
    cutoff = (parse_iso(now) - timedelta(seconds=STALE_SECS)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if seen is not None and seen < cutoff:
        return {
            "live": False,
            "message": f"worker {lease['holder']} holds this app but has not reported its"
            f" instances since {seen}",
        }
    return {"live": True, "message": None}

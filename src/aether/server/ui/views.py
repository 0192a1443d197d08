"""What each dashboard page shows, gathered from the store: plain dicts for the templates.

Nothing here renders or checks access (the handlers in :mod:`aether.server.ui.routes` do);
values of config vars never pass through here — only names.
"""

from __future__ import annotations

import json
from typing import Any

from aether.models import REPORT_PHASES, TERMINAL_STATUSES
from aether.server.app_status import app_status
from aether.server.state import ServerState
from aether.store import app_overview, config_vars, deployment_reports
from aether.store import apps as app_store
from aether.store import deployments as deployment_store
from aether.store import releases as release_store
from aether.store.clock import parse_iso
from aether.store.database import Row

RELEASES_SHOWN = 30
NO_REPORT: dict[str, Any] = {"timings_ms": {}, "uploaded_bytes": None, "skipped_bytes": None}


def duration_ms(row: Row | None) -> float | None:
    """A deployment's deploy time: the client's reported total, else creation → running."""
    if row is None:
        return None
    timings = json.loads(row["timings"]) if row.get("timings") else {}
    if "total" in timings:
        return float(timings["total"])
    if row.get("rollout_completed_at"):
        delta = parse_iso(row["rollout_completed_at"]) - parse_iso(row["created_at"])
        return delta.total_seconds() * 1000
    return None


async def apps_overview(state: ServerState, query: str = "") -> list[dict[str, Any]]:
    """Every app (whose name holds ``query``), most recently active first."""
    summaries = await app_overview.app_summaries(state.db)
    items = []
    for app in await app_store.list_apps(state.db):
        if query and query.lower() not in app["name"]:
            continue
        slots = summaries.get(app["id"], {})
        items.append(_app_item(state, app, slots.get("current"), slots.get("newest")))
    return sorted(items, key=lambda item: item["last_activity"], reverse=True)


def _app_item(state: ServerState, app: Row, current: Row | None, newest: Row | None) -> dict:
    running = current is not None and current["status"] == "running"
    return {
        "name": app["name"],
        "url": state.app_url(app["name"]),
        "status": current["status"] if current else "not deployed",
        "current": current,
        "running": int(current["replicas"]) if running and current else 0,
        "desired": int(newest["replicas"]) if newest else 0,
        "last_activity": newest["created_at"] if newest else app["created_at"],
        "last_duration_ms": duration_ms(newest),
    }


def timing_bar(timings: dict[str, float]) -> list[dict[str, Any]]:
    """The stacked bar's segments: each reported phase with its share of their sum."""
    phases = [(phase, float(timings[phase])) for phase in REPORT_PHASES if phase in timings]
    whole = sum(value for _, value in phases)
    if whole <= 0:
        return []
    bar, start = [], 0.0
    for phase, value in phases:
        share = 100 * value / whole
        bar.append({"phase": phase, "ms": value, "x": round(start, 3), "width": round(share, 3)})
        start += share
    return bar


async def releases(state: ServerState, app: Row) -> list[dict[str, Any]]:
    """The app's newest releases with their rollout, artifact, client report and restarts."""
    rows = await release_store.list_page(state.db, app["id"], limit=RELEASES_SHOWN, before=None)
    rows = await release_store.with_restarts(state.db, rows)
    artifacts = await app_overview.artifacts_by_digest(
        state.db, [row["artifact_digest"] for row in rows]
    )
    reports = await deployment_reports.for_deployments(
        state.db, [row["deployment_id"] for row in rows if row["deployment_id"]]
    )
    desired = await release_store.desired(state.db, app["id"])
    desired_version = desired["version"] if desired else None
    found = []
    for row in rows:
        artifact = artifacts.get(row["artifact_digest"])
        report = reports.get(row["deployment_id"] or "", NO_REPORT)
        timings = report.get("timings_ms", {})
        found.append(
            {
                **row,
                "artifact": artifact,
                "report": report,
                "total_ms": timings.get("total"),
                "bar": timing_bar(timings),
                "can_roll_back_to": artifact is not None and row["version"] != desired_version,
            }
        )
    return found


async def timeline(state: ServerState, deployment_id: str) -> dict[str, Any] | None:
    row = await deployment_store.get_deployment(state.db, deployment_id)
    if row is None:
        return None
    events = await deployment_store.list_events(state.db, deployment_id)
    return {"deployment": row, "events": events, "live": row["status"] not in TERMINAL_STATUSES}


async def instances(state: ServerState, app: Row) -> dict[str, Any]:
    """Each instance as the worker that holds the app last recorded it (what ``aether ps``
    shows), the replicas asked for, and what to say when no live worker looks after it."""
    status = await app_status(state, app)
    desired = await release_store.base_release(state.db, app["id"])
    return {
        "desired": int(desired["replicas"]) if desired else 0,
        "deployed": desired is not None,
        "running": status["release"] is not None,
        "rows": status["instances"],
        "notice": status["worker"]["message"],
    }


async def config_names(state: ServerState, app: Row) -> list[str]:
    snapshot = await config_vars.current(state.db, app["id"])
    return sorted(snapshot.vars)

"""What clients measured per deployment (:class:`aether.models.DeployReport`), kept for the
dashboard: phase timings and uploaded/skipped bytes. Display only — nothing decides anything
on these figures — and already bounded by :func:`aether.models.check_report`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aether.models import DeployReport
from aether.store.clock import now_iso
from aether.store.database import Executor, Row, in_list

# The latency page reads at most this many deployments (a month of a busy platform).
MAX_LATENCY_ROWS = 20_000


async def save(db: Executor, deployment_id: str, report: DeployReport, *, final: bool) -> None:
    """Record ``report``: timings merge into what was reported before (the final report
    adds rollout and total to the phases sent with the request)."""
    old = await get(db, deployment_id)
    timings = {**(old or {}).get("timings_ms", {}), **report.get("timings_ms", {})}
    params = {
        "id": deployment_id,
        "timings": json.dumps(timings, sort_keys=True),
        "uploaded": report.get("uploaded_bytes", (old or {}).get("uploaded_bytes")),
        "skipped": report.get("skipped_bytes", (old or {}).get("skipped_bytes")),
        "final": int(final or bool(old and old["final"])),
        "now": now_iso(),
    }
    await db.execute(
        "INSERT INTO deployment_reports (deployment_id, timings, uploaded_bytes, skipped_bytes,"
        " final, reported_at) VALUES (:id, :timings, :uploaded, :skipped, :final, :now)"
        " ON CONFLICT (deployment_id) DO UPDATE SET timings = excluded.timings,"
        " uploaded_bytes = excluded.uploaded_bytes, skipped_bytes = excluded.skipped_bytes,"
        " final = excluded.final, reported_at = excluded.reported_at",
        params,
    )


async def get(db: Executor, deployment_id: str) -> dict[str, Any] | None:
    found = await for_deployments(db, [deployment_id])
    return found.get(deployment_id)


async def for_deployments(db: Executor, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """deployment id → its report (``timings_ms``, ``uploaded_bytes``, ``skipped_bytes``,
    ``final``), for those that have one."""
    placeholders, params = in_list("id", ids)
    if not params:
        return {}
    rows = await db.fetch_all(
        "SELECT deployment_id, timings, uploaded_bytes, skipped_bytes, final"
        f" FROM deployment_reports WHERE deployment_id IN ({placeholders})",
        params,
    )
    return {row["deployment_id"]: _report(row) for row in rows}


def _report(row: Row) -> dict[str, Any]:
    return {
        "timings_ms": json.loads(row["timings"] or "{}"),
        "uploaded_bytes": row["uploaded_bytes"],
        "skipped_bytes": row["skipped_bytes"],
        "final": bool(row["final"]),
    }


async def latency_rows(db: Executor, since: str) -> list[Row]:
    """Deployments created since ``since`` whose rollout succeeded, newest first, with their
    app, server-side times and reported timings (None when the client sent none)."""
    return await db.fetch_all(
        "SELECT ap.name AS app_name, d.created_at, d.rollout_completed_at, r.timings"
        " FROM deployments d JOIN applications ap ON ap.id = d.app_id"
        " LEFT JOIN deployment_reports r ON r.deployment_id = d.id"
        " WHERE d.created_at >= :since AND d.status IN ('running', 'superseded')"
        f" ORDER BY d.created_at DESC LIMIT {MAX_LATENCY_ROWS}",
        {"since": since},
    )

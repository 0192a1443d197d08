"""The reads behind the dashboard's pages: per app its newest and current deployment with
who made them, the artifacts of a page of releases, and restart counts. Read-only, and
each one query however many apps or releases a page shows."""

from __future__ import annotations

from collections.abc import Iterable

from aether.store.database import Executor, Row, in_list

# Per app: its newest deployment (rank by time) and its running one, with the release's
# number and author, the artifact's digest and the client's report.
_SUMMARY = (
    "SELECT * FROM (SELECT d.app_id, d.id, d.status, d.replicas, d.created_at,"
    " d.rollout_completed_at, d.endpoint, d.failure_reason, r.version AS release,"
    " a.digest AS artifact_digest, u.email AS created_by, rep.timings,"
    " ROW_NUMBER() OVER (PARTITION BY d.app_id ORDER BY d.created_at DESC, d.id DESC)"
    " AS newest_rank,"
    " ROW_NUMBER() OVER (PARTITION BY d.app_id ORDER BY CASE WHEN d.status = 'running'"
    " THEN 0 ELSE 1 END, d.created_at DESC, d.id DESC) AS current_rank"
    " FROM deployments d JOIN artifacts a ON a.id = d.artifact_id"
    " LEFT JOIN releases r ON r.id = d.release_id LEFT JOIN users u ON u.id = r.created_by"
    " LEFT JOIN deployment_reports rep ON rep.deployment_id = d.id) ranked"
    " WHERE newest_rank = 1 OR current_rank = 1"
)


async def app_summaries(db: Executor) -> dict[str, dict[str, Row | None]]:
    """app id → ``{"newest": row, "current": row}``: its newest deployment and the one it
    runs (else its newest); apps never deployed are absent."""
    found: dict[str, dict[str, Row | None]] = {}
    for row in await db.fetch_all(_SUMMARY):
        slots = found.setdefault(row["app_id"], {"newest": None, "current": None})
        if row["newest_rank"] == 1:
            slots["newest"] = row
        if row["current_rank"] == 1:
            slots["current"] = row
    return found


async def artifacts_by_digest(db: Executor, digests: Iterable[str]) -> dict[str, Row]:
    """digest → the stored artifact (size, signature, verified); digests that retention
    deleted (or never stored) are absent."""
    placeholders, params = in_list("d", digests)
    if not params:
        return {}
    rows = await db.fetch_all(
        "SELECT digest, size_bytes, compression, signature, verified FROM artifacts"
        f" WHERE status = 'stored' AND digest IN ({placeholders})",
        params,
    )
    return {row["digest"]: row for row in rows}

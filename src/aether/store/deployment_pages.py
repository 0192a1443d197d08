"""A page of an app's deployments, read straight into the API's deployment objects.

Listing an app's deployments is the API's busiest read. The query names its columns after the
keys of :class:`aether.models.Deployment`, in its order (a test holds the two equal), so
each row is that object once its env is decoded, and the server encodes the page as it comes
instead of copying every row into another dict. (Having the database write the JSON instead
cost PostgreSQL more than it saved here.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

from aether.models import Deployment
from aether.store.database import Executor
from aether.store.deployments import decode_cursor, decode_env, encode_cursor

# (key, SQL expression) of a listed deployment, in the API object's order.
FIELDS = (
    ("id", "d.id"),
    ("app_name", "ap.name"),
    ("release", "r.version"),
    ("artifact_digest", "a.digest"),
    ("config_version", "r.config_version"),
    ("status", "d.status"),
    ("runtime", "d.runtime"),
    ("node_version", "r.node_version"),
    ("start_command", "d.start_command"),
    ("env", "d.env"),  # JSON text until decode_env
    ("replicas", "d.replicas"),
    ("health_path", "d.health_path"),
    ("failure_reason", "d.failure_reason"),
    ("endpoint", "d.endpoint"),
    ("url", "CAST(:url AS TEXT)"),
    ("rolled_back_from", "d.rolled_back_from"),
    ("reason", "d.reason"),
    ("created_at", "d.created_at"),
    ("rollout_started_at", "d.rollout_started_at"),
    ("rollout_completed_at", "d.rollout_completed_at"),
)


@dataclass(frozen=True)
class ObjectPage:
    app_id: str
    deployments: list[Deployment]  # newest first
    next_cursor: str | None


async def app_deployments(
    db: Executor, app_name: str, *, limit: int, cursor: str | None, url: str
) -> ObjectPage | None:
    """The app's deployments newest first (None when there is no such app), in one round
    trip; ``cursor`` continues after the last one of the previous page, and ``url`` is the
    app's URL that every object carries."""
    params: dict[str, Any] = {"name": app_name, "limit": limit + 1, "url": url}
    if cursor:
        params["c_at"], params["c_id"] = decode_cursor(cursor)
    rows = await db.fetch_all(_page_sql(after_cursor=bool(cursor)), params)
    if not rows:
        return None
    app_id = rows[0]["app_key"]
    found = [row for row in rows if row["id"] is not None]  # an app without any has one row
    page = [decode_env(row) for row in found[:limit]]
    for row in page:
        del row["app_key"]
    # Each row now holds exactly Deployment's keys (FIELDS), so it is one.
    deployments = cast(list[Deployment], page)
    next_cursor = encode_cursor(page[-1]) if len(found) > limit else None
    return ObjectPage(app_id, deployments, next_cursor)


@functools.cache
def _page_sql(*, after_cursor: bool) -> str:
    # One more row than a page is read, to learn whether another page follows.
    on = "d.app_id = ap.id"
    if after_cursor:
        on += " AND (d.created_at < :c_at OR (d.created_at = :c_at AND d.id < :c_id))"
    columns = ", ".join(f"{expr} AS {key}" for key, expr in (*FIELDS, ("app_key", "ap.id")))
    return (
        f"SELECT {columns} FROM applications ap LEFT JOIN (deployments d JOIN artifacts a"
        f" ON a.id = d.artifact_id LEFT JOIN releases r ON r.id = d.release_id) ON {on}"
        " WHERE ap.name = :name"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT :limit"
    )

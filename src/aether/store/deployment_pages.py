"""A page of an app's deployments as JSON text that the database builds.

Listing an app's deployments is the API's busiest read, and turning twenty rows into dicts and
the dicts into JSON cost the server more CPU than the query itself. Here the database writes
each deployment's JSON object, in the shape of the API's deployment object
(:func:`aether.server.routes.deployments.deployment_json`: the same keys in the same order;
a test holds the two equal), and the server embeds the objects as they come.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from aether.store.database import Executor, Row
from aether.store.deployments import decode_cursor, encode_cursor

# (key, SQL expression) of a listed deployment's JSON object. ENV stands for the stored env
# text read as a JSON value, which each dialect spells its own way.
ENV = "<env>"
FIELDS = (
    ("id", "d.id"),
    ("app_name", "ap.name"),
    ("artifact_digest", "a.digest"),
    ("status", "d.status"),
    ("runtime", "d.runtime"),
    ("start_command", "d.start_command"),
    ("env", ENV),
    ("replicas", "d.replicas"),
    ("health_path", "d.health_path"),
    ("failure_reason", "d.failure_reason"),
    ("endpoint", "d.endpoint"),
    ("url", "CAST(:url AS TEXT)"),
    ("rolled_back_from", "d.rolled_back_from"),
    ("created_at", "d.created_at"),
    ("rollout_started_at", "d.rollout_started_at"),
    ("rollout_completed_at", "d.rollout_completed_at"),
)
_STORED_ENV = "COALESCE(NULLIF(d.env, ''), '{}')"  # an empty env is stored as '{}'


@dataclass(frozen=True)
class JsonPage:
    items: list[str]  # one deployment object (JSON text) per deployment, newest first
    next_cursor: str | None


async def app_deployments_json(
    db: Executor, app_name: str, *, limit: int, cursor: str | None, url: str
) -> tuple[Row | None, JsonPage]:
    """(app, page) in one round trip: the app row (None when there is no such app) and its
    deployments newest first; ``cursor`` continues after the last one of the previous page,
    and ``url`` is the app's URL that every object carries."""
    params: dict[str, Any] = {"name": app_name, "limit": limit + 1, "url": url}
    if cursor:
        params["c_at"], params["c_id"] = decode_cursor(cursor)
    rows = await db.fetch_all(_page_sql(db.dialect, after_cursor=bool(cursor)), params)
    if not rows:
        return None, JsonPage([], None)
    first = rows[0]
    app = {
        "id": first["app_id"],
        "name": app_name,
        "owner": first["app_owner"],
        "created_at": first["app_created_at"],
    }
    found = [row for row in rows if row["id"] is not None]  # an app without any has one row
    page = found[:limit]
    next_cursor = encode_cursor(page[-1]) if len(found) > limit else None
    return app, JsonPage([row["item"] for row in page], next_cursor)


@functools.cache
def _page_sql(dialect: str, *, after_cursor: bool) -> str:
    on = "d.app_id = ap.id"
    if after_cursor:
        on += " AND (d.created_at < :c_at OR (d.created_at = :c_at AND d.id < :c_id))"
    return (
        "SELECT ap.id AS app_id, ap.owner AS app_owner, ap.created_at AS app_created_at,"
        f" d.id, d.created_at, {json_object_sql(dialect)} AS item"
        " FROM applications ap LEFT JOIN (deployments d JOIN artifacts a"
        f" ON a.id = d.artifact_id) ON {on} WHERE ap.name = :name"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT :limit"
    )


def json_object_sql(dialect: str) -> str:
    """The SQL expression of one deployment's JSON object (as text) over the listing's join."""
    if dialect == "postgresql":
        # row_to_json writes compact JSON in the subquery's column order.
        env = f"CAST({_STORED_ENV} AS json)"
        columns = ", ".join(f"{env if expr == ENV else expr} AS {key}" for key, expr in FIELDS)
        return f"CAST((SELECT row_to_json(o) FROM (SELECT {columns}) o) AS TEXT)"
    env = f"json({_STORED_ENV})"
    pairs = ", ".join(f"'{key}', {env if expr == ENV else expr}" for key, expr in FIELDS)
    return f"json_object({pairs})"

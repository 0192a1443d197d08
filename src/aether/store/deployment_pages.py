"""A page of an app's deployments as JSON text that the database builds.

Listing an app's deployments is the API's busiest read, and turning twenty rows into dicts and
the dicts into JSON cost the server more CPU than the query itself. Here the database writes
each deployment's JSON object, in the shape of the API's deployment object
(:func:`aether.server.routes.deployments.deployment_json`: the same keys in the same order;
a test holds the two equal), joins a page of them into one array, and returns it in one row
with what the next cursor needs; the server embeds the array as it comes.
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
    deployments: str  # a JSON array of deployment objects, newest first
    next_cursor: str | None


async def app_deployments_json(
    db: Executor, app_name: str, *, limit: int, cursor: str | None, url: str
) -> tuple[Row | None, JsonPage]:
    """(app, page) in one round trip and one row: the app row (None when there is no such
    app) and its deployments newest first; ``cursor`` continues after the last one of the
    previous page, and ``url`` is the app's URL that every object carries."""
    params: dict[str, Any] = {"name": app_name, "size": limit, "limit": limit + 1, "url": url}
    if cursor:
        params["c_at"], params["c_id"] = decode_cursor(cursor)
    row = await db.fetch_one(_page_sql(db.dialect, after_cursor=bool(cursor)), params)
    if row is None:
        return None, JsonPage("[]", None)
    app = {
        "id": row["app_id"],
        "name": app_name,
        "owner": row["app_owner"],
        "created_at": row["app_created_at"],
    }
    last = {"created_at": row["last_created_at"], "id": row["last_id"]}
    next_cursor = encode_cursor(last) if row["found"] > limit else None
    return app, JsonPage(f"[{row['items'] or ''}]", next_cursor)


@functools.cache
def _page_sql(dialect: str, *, after_cursor: bool) -> str:
    # One more row than a page is read, to learn whether another page follows; the page's
    # last row gives the next cursor.
    where = "ap.name = :name"
    if after_cursor:
        where += " AND (d.created_at < :c_at OR (d.created_at = :c_at AND d.id < :c_id))"
    page = (
        f"SELECT {json_object_sql(dialect)} AS item, d.created_at, d.id,"
        " ROW_NUMBER() OVER (ORDER BY d.created_at DESC, d.id DESC) AS n"
        " FROM deployments d JOIN artifacts a ON a.id = d.artifact_id"
        f" JOIN applications ap ON ap.id = d.app_id WHERE {where}"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT :limit"
    )
    if dialect == "postgresql":
        items = "string_agg(p.item, ',' ORDER BY p.n)"
    else:
        # No ORDER BY inside an aggregate before SQLite 3.44; it feeds the aggregate in the
        # order of the page subquery, which a LIMIT keeps from being flattened into it.
        items = "group_concat(p.item, ',')"
    return (
        "SELECT owner_app.id AS app_id, owner_app.owner AS app_owner,"
        f" owner_app.created_at AS app_created_at, {items} FILTER (WHERE p.n <= :size) AS items,"
        " COUNT(p.n) AS found, MAX(CASE WHEN p.n = :size THEN p.created_at END) AS last_created_at,"
        " MAX(CASE WHEN p.n = :size THEN p.id END) AS last_id"
        f" FROM applications owner_app LEFT JOIN ({page}) p ON 1 = 1"
        " WHERE owner_app.name = :name"
        " GROUP BY owner_app.id, owner_app.owner, owner_app.created_at"
    )


def json_object_sql(dialect: str) -> str:
    """The SQL expression of one deployment's JSON object (as text) over the page's join."""
    if dialect == "postgresql":
        # row_to_json writes compact JSON in the subquery's column order.
        env = f"CAST({_STORED_ENV} AS json)"
        columns = ", ".join(f"{env if expr == ENV else expr} AS {key}" for key, expr in FIELDS)
        return f"CAST((SELECT row_to_json(obj) FROM (SELECT {columns}) obj) AS TEXT)"
    env = f"json({_STORED_ENV})"
    pairs = ", ".join(f"'{key}', {env if expr == ENV else expr}" for key, expr in FIELDS)
    return f"json_object({pairs})"

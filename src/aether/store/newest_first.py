"""Listings newest first, one page at a time: ``ORDER BY created_at DESC, id DESC`` with a
keyset cursor (the last row of the previous page). Stored artifacts and uploads in progress
are listed this way, so the artifacts API can merge their pages into one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aether.store.database import Executor, Row


async def page(
    db: Executor,
    select: str,
    alias: str,
    *,
    limit: int,
    after: tuple[str, str] | None,
    equal: Mapping[str, Any],
) -> list[Row]:
    """At most ``limit`` rows of ``select`` (a query without WHERE), newest first by
    ``<alias>.created_at`` then ``<alias>.id``, after the row ``after`` (created_at, id).
    ``equal`` maps a column expression to the value it must have; None leaves it open."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    for index, (column, value) in enumerate(equal.items()):
        if value is not None:
            where.append(f"{column} = :eq{index}")
            params[f"eq{index}"] = value
    if after is not None:
        where.append(f"({alias}.created_at < :c OR ({alias}.created_at = :c AND {alias}.id < :i))")
        params.update(c=after[0], i=after[1])
    order = f"{alias}.created_at DESC, {alias}.id DESC"
    return await db.fetch_all(
        f"{select} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit", params
    )

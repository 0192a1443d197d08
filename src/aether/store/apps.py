"""Application rows: create, look up, list with each app's current deployment, destroy."""

from __future__ import annotations

import uuid

from aether.errors import Conflict, NotFound
from aether.store import artifacts, tokens, wakeups
from aether.store.clock import now_iso
from aether.store.database import Database, DuplicateKey, Executor, Row
from aether.store.deployments import DEPLOYMENT_JOINS, LISTING_COLUMNS, lock_app


async def create_app(db: Executor, name: str, *, owner: str | None) -> Row:
    row = {"id": str(uuid.uuid4()), "name": name, "owner": owner, "created_at": now_iso()}
    try:
        await db.execute(
            "INSERT INTO applications (id, name, owner, created_at)"
            " VALUES (:id, :name, :owner, :created_at)",
            row,
        )
    except DuplicateKey as exc:
        raise Conflict(f"application name exists: {name!r}") from exc
    return row


async def get_app(db: Executor, name: str) -> Row | None:
    return await db.fetch_one(
        "SELECT id, name, owner, created_at FROM applications WHERE name = :name", {"name": name}
    )


async def require_app(db: Executor, name: str) -> Row:
    row = await get_app(db, name)
    if row is None:
        raise NotFound(f"application {name!r} does not exist; create it with POST /apps")
    return row


async def list_apps(db: Executor) -> list[Row]:
    return await db.fetch_all("SELECT id, name, owner, created_at FROM applications ORDER BY name")


async def current_deployments(db: Executor) -> dict[str, Row]:
    """Per app id: its newest running deployment, else its newest deployment of any status."""
    rows = await db.fetch_all(
        f"SELECT * FROM (SELECT d.app_id, {LISTING_COLUMNS}, ROW_NUMBER() OVER ("
        " PARTITION BY d.app_id ORDER BY CASE WHEN d.status = 'running' THEN 0 ELSE 1 END,"
        f" d.created_at DESC, d.id DESC) AS rank_in_app {DEPLOYMENT_JOINS}) ranked"
        " WHERE rank_in_app = 1"
    )
    return {row["app_id"]: _without_rank(row) for row in rows}


def _without_rank(row: Row) -> Row:
    row.pop("rank_in_app", None)
    return row


async def destroy_app(db: Database, app_id: str) -> list[Row]:
    """Delete the app and everything that is only its: releases, config versions, deployments
    and their events, signing keys, the pull tokens of its deployments, its log lines, and its
    artifacts' rows — except artifacts another app runs, which pass to that app. Returns the artifact
    rows deleted (their objects are the caller's to delete). One transaction."""
    async with db.transaction() as tx:
        await lock_app(tx, app_id)
        await artifacts.hand_over_shared(tx, app_id)
        doomed = await artifacts.of_app(tx, app_id)
        await tokens.delete_pull_tokens_of_app(tx, app_id)
        # log lines carry no foreign key (a partitioned table on PostgreSQL): deleted here so
        # a destroyed app's output does not wait for age retention
        await tx.execute("DELETE FROM log_lines WHERE app_id = :id", {"id": app_id})
        await tx.execute("DELETE FROM applications WHERE id = :id", {"id": app_id})
    wakeups.poke(wakeups.APPS)
    return doomed

"""Deployment rows and their events: the rollouts of releases (:mod:`aether.store.releases`
makes both), which the worker moves along.

A deployment row keeps a copy of its release's plain fields (artifact, runtime, start
command, replicas, health path) — what the rollout ran — and in ``env`` the names and
fingerprints of its environment, never values. (Workers are woken by the insert trigger of
:mod:`aether.store.rollouts` on PostgreSQL, by polling on SQLite.)
"""

from __future__ import annotations

import base64
import functools
import json
import uuid

from aether.errors import BadRequest
from aether.store import wakeups
from aether.store.clock import now_iso
from aether.store.database import Database, Executor, Row

ACTIVE_STATUSES = ("pending", "deploying", "running")
# Statuses a deployment reaches only after a successful rollout (a rollback target).
SUCCEEDED_STATUSES = ("running", "superseded")

DEPLOYMENT_COLUMNS = (
    "d.id, d.app_id, d.artifact_id, d.release_id, d.status, d.runtime, d.start_command, d.env,"
    " d.replicas, d.health_path, d.failure_reason, d.endpoint, d.rolled_back_from, d.reason,"
    " d.created_by, d.created_at, d.rollout_started_at, d.rollout_completed_at,"
    " ap.name AS app_name, a.digest AS artifact_digest, a.storage_key, a.compression,"
    " a.size_bytes, a.verified, a.signature, r.version AS release, r.config_version,"
    " r.node_version"
)
# What a listing shows (the API's deployment JSON), without the worker's artifact details.
LISTING_COLUMNS = (
    "d.id, d.status, d.runtime, d.start_command, d.env, d.replicas, d.health_path,"
    " d.failure_reason, d.endpoint, d.rolled_back_from, d.reason, d.created_at,"
    " d.rollout_started_at,"
    " d.rollout_completed_at, ap.name AS app_name, a.digest AS artifact_digest,"
    " r.version AS release, r.config_version, r.node_version"
)
DEPLOYMENT_JOINS = (
    "FROM deployments d JOIN applications ap ON ap.id = d.app_id"
    " JOIN artifacts a ON a.id = d.artifact_id LEFT JOIN releases r ON r.id = d.release_id"
)
_SELECT = f"SELECT {DEPLOYMENT_COLUMNS} {DEPLOYMENT_JOINS}"


def decode_env(row: Row) -> Row:
    """The row with ``env`` as a dict (it is stored as JSON text)."""
    raw = row.get("env")
    if raw == "{}" or not raw:  # most deployments set no env: skip the parser (listings)
        row["env"] = {}
    elif isinstance(raw, str):
        row["env"] = dict(_parsed_env(raw))  # a copy: the cached dict is shared
    return row


@functools.lru_cache(maxsize=256)
def _parsed_env(raw: str) -> dict[str, str]:
    # An app's deployments mostly repeat one env, and a page of them would parse it per row.
    env: dict[str, str] = json.loads(raw)
    return env


async def get_deployment(db: Executor, deployment_id: str) -> Row | None:
    """The deployment joined with its app's name and its artifact's digest, key, compression."""
    row = await db.fetch_one(f"{_SELECT} WHERE d.id = :id", {"id": deployment_id})
    return decode_env(row) if row else None


async def newest_of_app(db: Executor, app_id: str, *, running: bool = False) -> Row | None:
    """The app's newest deployment (its newest running one, with ``running``)."""
    where = " AND d.status = 'running'" if running else ""
    row = await db.fetch_one(
        f"{_SELECT} WHERE d.app_id = :app_id{where} ORDER BY d.created_at DESC, d.id DESC LIMIT 1",
        {"app_id": app_id},
    )
    return decode_env(row) if row else None


async def lock_app(tx: Executor, app_id: str) -> None:
    """Serialise the writers of one app's releases (SQLite's BEGIN IMMEDIATE already does;
    PostgreSQL needs the row lock so two identical requests cannot both insert)."""
    if tx.dialect == "postgresql":
        await tx.fetch_one("SELECT id FROM applications WHERE id = :id FOR UPDATE", {"id": app_id})


async def insert_deployment(
    tx: Executor, release_id: str, *, created_by: str | None = None, reason: str | None = None
) -> str:
    """A pending rollout of the release (its plain fields copied, ``env`` as fingerprints);
    ``reason`` 'restart' for another rollout of a release that runs."""
    deployment_id = str(uuid.uuid4())
    touched = await tx.execute(
        "INSERT INTO deployments (id, app_id, artifact_id, release_id, status, runtime,"
        " start_command, env, replicas, health_path, rolled_back_from, reason, created_by,"
        " created_at) SELECT :id, r.app_id, a.id, r.id, 'pending', r.runtime, r.start_command,"
        " r.env, r.replicas, r.health_path, :rolled_back_from, :reason,"
        " COALESCE(:created_by, r.created_by), :created_at FROM releases r"
        " JOIN artifacts a ON a.digest = r.artifact_digest WHERE r.id = :release_id",
        {
            "id": deployment_id,
            "release_id": release_id,
            "rolled_back_from": None if reason else await _rolled_back_from(tx, release_id),
            "reason": reason,
            "created_by": created_by,
            "created_at": now_iso(),
        },
    )
    if touched != 1:  # the release's artifact row is gone (retention, a destroyed app)
        raise BadRequest(f"the artifact of release {release_id} is not stored any more")
    return deployment_id


async def _rolled_back_from(tx: Executor, release_id: str) -> str | None:
    """For a rollback: the newest rollout of the release it went back to (the field the
    deployments API had before releases)."""
    found: str | None = await tx.fetch_value(
        "SELECT d.id FROM releases r JOIN releases t ON t.app_id = r.app_id"
        " AND t.version = r.rolled_back_to JOIN deployments d ON d.release_id = t.id"
        " WHERE r.id = :id ORDER BY d.created_at DESC, d.id DESC LIMIT 1",
        {"id": release_id},
    )
    return found


async def add_event(db: Executor, deployment_id: str, phase: str, message: str = "") -> None:
    await db.execute(
        "INSERT INTO deployment_events (deployment_id, phase, message, timestamp)"
        " VALUES (:deployment_id, :phase, :message, :timestamp)",
        {
            "deployment_id": deployment_id,
            "phase": phase,
            "message": message,
            "timestamp": now_iso(),
        },
    )
    wakeups.poke(wakeups.deployment_topic(deployment_id))


async def list_events(db: Executor, deployment_id: str, *, after: int = 0) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, phase, message, timestamp FROM deployment_events"
        " WHERE deployment_id = :id AND id > :after ORDER BY id",
        {"id": deployment_id, "after": after},
    )


def encode_cursor(row: Row) -> str:
    raw = f"{row['created_at']}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, _, row_id = base64.urlsafe_b64decode(padded).decode().partition("|")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("invalid cursor; pass the next_cursor of the previous page") from exc
    if not created_at or not row_id:
        raise BadRequest("invalid cursor; pass the next_cursor of the previous page")
    return created_at, row_id


async def cancel_pending(db: Database, deployment_id: str, reason: str) -> bool:
    """pending → failed with ``reason`` (and a ``cancelled`` event), in one transaction; False
    when the deployment is no longer pending (a worker took it, or it ended)."""
    async with db.transaction() as tx:
        touched = await tx.execute(
            "UPDATE deployments SET status = 'failed', failure_reason = :reason,"
            " rollout_completed_at = :now WHERE id = :id AND status = 'pending'",
            {"id": deployment_id, "reason": reason, "now": now_iso()},
        )
        if touched:
            await tx.execute(
                "INSERT INTO deployment_events (deployment_id, phase, message, timestamp)"
                " VALUES (:id, 'cancelled', :reason, :now)",
                {"id": deployment_id, "reason": reason, "now": now_iso()},
            )
    wakeups.poke(wakeups.deployment_topic(deployment_id))
    return touched > 0

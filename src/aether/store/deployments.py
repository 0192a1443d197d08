"""Deployment rows and their events: what the API writes and the worker moves along.

A new deployment is idempotent per app + artifact while one of that artifact is still
pending, deploying or running. (Workers are woken by the insert trigger of
:mod:`aether.store.rollouts` on PostgreSQL, by polling on SQLite.)
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from dataclasses import dataclass, field

from aether.errors import BadRequest
from aether.store import wakeups
from aether.store.clock import now_iso
from aether.store.database import Database, Executor, Row

ACTIVE_STATUSES = ("pending", "deploying", "running")
# Statuses a deployment reaches only after a successful rollout (a rollback target).
SUCCEEDED_STATUSES = ("running", "superseded")

DEPLOYMENT_COLUMNS = (
    "d.id, d.app_id, d.artifact_id, d.status, d.runtime, d.node_version, d.start_command, d.env,"
    " d.replicas,"
    " d.health_path, d.failure_reason, d.endpoint, d.rolled_back_from, d.created_by,"
    " d.created_at, d.rollout_started_at, d.rollout_completed_at, ap.name AS app_name,"
    " a.digest AS artifact_digest, a.storage_key, a.compression, a.size_bytes, a.verified,"
    " a.signature"
)
# What a listing shows (the API's deployment JSON), without the worker's artifact details.
LISTING_COLUMNS = (
    "d.id, d.status, d.runtime, d.node_version, d.start_command, d.env, d.replicas,"
    " d.health_path,"
    " d.failure_reason, d.endpoint, d.rolled_back_from, d.created_at, d.rollout_started_at,"
    " d.rollout_completed_at, ap.name AS app_name, a.digest AS artifact_digest"
)
DEPLOYMENT_JOINS = (
    "FROM deployments d JOIN applications ap ON ap.id = d.app_id"
    " JOIN artifacts a ON a.id = d.artifact_id"
)
_SELECT = f"SELECT {DEPLOYMENT_COLUMNS} {DEPLOYMENT_JOINS}"


@dataclass(frozen=True)
class DeploymentSpec:
    """What a new deployment runs: the artifact and how to start it."""

    app_id: str
    artifact_id: str
    runtime: str = "nodejs"
    node_version: str | None = None  # the Node.js major it was built for ("20")
    start_command: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    health_path: str | None = None
    created_by: str | None = None
    rolled_back_from: str | None = None


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


async def create_deployment(db: Database, spec: DeploymentSpec) -> tuple[Row, bool]:
    """(deployment, created); an active deployment of the same artifact is returned as is."""
    async with db.transaction() as tx:
        await _lock_app(tx, spec.app_id)
        existing = await tx.fetch_one(
            "SELECT id FROM deployments WHERE app_id = :app AND artifact_id = :artifact"
            " AND status IN ('pending', 'deploying', 'running')"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            {"app": spec.app_id, "artifact": spec.artifact_id},
        )
        if existing is not None:
            found = await get_deployment(tx, existing["id"])
            assert found is not None
            return found, False
        deployment_id = await _insert(tx, spec)
        await add_event(tx, deployment_id, "pending", "deployment created")
        created = await get_deployment(tx, deployment_id)
    assert created is not None
    wakeups.poke(wakeups.NEW_DEPLOYMENT)
    return created, True


async def _lock_app(tx: Executor, app_id: str) -> None:
    # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs the row lock so
    # two concurrent identical requests cannot both insert.
    if tx.dialect == "postgresql":
        await tx.fetch_one("SELECT id FROM applications WHERE id = :id FOR UPDATE", {"id": app_id})


async def _insert(tx: Executor, spec: DeploymentSpec) -> str:
    deployment_id = str(uuid.uuid4())
    await tx.execute(
        "INSERT INTO deployments (id, app_id, artifact_id, status, runtime, node_version,"
        " start_command, env, replicas, health_path, rolled_back_from, created_by, created_at)"
        " VALUES (:id, :app_id, :artifact_id, 'pending', :runtime, :node_version,"
        " :start_command, :env, :replicas, :health_path, :rolled_back_from, :created_by,"
        " :created_at)",
        {
            "id": deployment_id,
            "app_id": spec.app_id,
            "artifact_id": spec.artifact_id,
            "runtime": spec.runtime,
            "node_version": spec.node_version,
            "start_command": spec.start_command,
            "env": json.dumps(spec.env, sort_keys=True),
            "replicas": spec.replicas,
            "health_path": spec.health_path,
            "rolled_back_from": spec.rolled_back_from,
            "created_by": spec.created_by,
            "created_at": now_iso(),
        },
    )
    return deployment_id


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


async def rollback_target(db: Executor, app_id: str, *, to: str | None) -> Row:
    """The deployment a rollback redeploys: ``to`` when given (of this app), else the newest
    successful one before the current running one."""
    if to is not None:
        row = await get_deployment(db, to)
        if row is None or row["app_id"] != app_id:
            raise BadRequest(f"deployment {to} is not a deployment of this app")
        return row
    rows = await db.fetch_all(
        f"{_SELECT} WHERE d.app_id = :app AND d.status IN ('running', 'superseded')"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT 2",
        {"app": app_id},
    )
    if rows and rows[0]["status"] == "running":
        rows = rows[1:]
    if not rows:
        raise BadRequest("no earlier successful deployment to roll back to; pass 'to'")
    return decode_env(rows[0])

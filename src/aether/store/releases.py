"""Releases: what an app runs, numbered per app (v1, v2, ...), and their rollouts.

A release is the tuple :class:`ReleaseSpec` — artifact, config version, one-off environment,
runtime and Node.js version, start command, scale, health check — with a number, a kind
(deploy, config, scale, rollback), a description and who made it. A deployment is the
rollout of a release (``deployments.release_id``); the deployment row keeps a copy of the
tuple's plain fields (what the rollout ran), and ``env`` there holds names and fingerprints
only. A restart is not a release — nothing of the tuple changes — but another rollout of one
(``reason`` 'restart'); the history lists each under the release it restarted
(:func:`with_restarts`).

:func:`propose` is the one way a release is made: in one transaction it compares the new
tuple with the app's *desired* release (the one its newest pending, deploying or running
deployment rolls out) and either answers that one (unchanged: nothing restarts) or writes
the next release and its deployment.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from aether.errors import Conflict
from aether.sealing import SealedEnv
from aether.store import config_vars
from aether.store.clock import now_iso
from aether.store.database import Executor, Row, in_list
from aether.store.deployments import add_event, get_deployment, insert_deployment

RELEASE_COLUMNS = (
    "r.id, r.app_id, r.version, r.kind, r.description, r.artifact_digest, r.config_version,"
    " r.overrides, r.env, r.runtime, r.node_version, r.start_command, r.replicas,"
    " r.health_path, r.rolled_back_to, r.created_by, r.created_at"
)
# The newest rollout of each release: its status is the release's.
_WITH_STATUS = (
    f"SELECT {RELEASE_COLUMNS}, ap.name AS app_name, u.email AS created_by_email,"
    " (SELECT d.id FROM deployments d WHERE d.release_id = r.id"
    "  ORDER BY d.created_at DESC, d.id DESC LIMIT 1) AS deployment_id,"
    " (SELECT d.status FROM deployments d WHERE d.release_id = r.id"
    "  ORDER BY d.created_at DESC, d.id DESC LIMIT 1) AS status,"
    " (SELECT COUNT(*) FROM deployments d WHERE d.release_id = r.id"
    "  AND d.reason = 'restart') AS restarts"
    " FROM releases r JOIN applications ap ON ap.id = r.app_id"
    " LEFT JOIN users u ON u.id = r.created_by"
)


@dataclass(frozen=True)
class ReleaseSpec:
    """What makes two releases the same (a deploy of an equal tuple changes nothing)."""

    artifact_digest: str
    config_version: int = 0
    overrides: SealedEnv = field(default_factory=dict)
    runtime: str = "nodejs"
    node_version: str | None = None
    start_command: str | None = None
    replicas: int = 1
    health_path: str | None = None

    @classmethod
    def of(cls, row: Row) -> ReleaseSpec:
        return cls(
            artifact_digest=row["artifact_digest"],
            config_version=int(row["config_version"]),
            overrides=config_vars.decode(row["overrides"]),
            runtime=row["runtime"],
            node_version=row["node_version"],
            start_command=row["start_command"],
            replicas=int(row["replicas"]),
            health_path=row["health_path"],
        )


@dataclass(frozen=True)
class Proposal:
    """A release to make: its tuple, kind and description (``env``: name → fingerprint of
    the whole environment, which the caller computed from the config and overrides)."""

    spec: ReleaseSpec
    kind: str
    description: str
    env: dict[str, str]
    created_by: str | None
    rolled_back_to: int | None = None


@dataclass(frozen=True)
class Outcome:
    release: Row
    deployment: Row
    created: bool  # False: the app already runs (or rolls out) this very tuple
    base_overrides: tuple[str, ...] = ()  # one-off names of the release it started from


# Builds the proposal from the app's current release (None: the app has none yet), inside
# the transaction that writes it, so the base cannot change underneath.
Proposer = Callable[[Executor, Row | None], Awaitable[Proposal]]


async def desired(db: Executor, app_id: str) -> Row | None:
    """The release the app's newest pending, deploying or running deployment rolls out."""
    return await db.fetch_one(
        f"{_WITH_STATUS} WHERE r.id = (SELECT d.release_id FROM deployments d"
        " WHERE d.app_id = :app AND d.status IN ('pending', 'deploying', 'running')"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT 1)",
        {"app": app_id},
    )


async def newest(db: Executor, app_id: str) -> Row | None:
    return await db.fetch_one(
        f"{_WITH_STATUS} WHERE r.app_id = :app ORDER BY r.version DESC LIMIT 1", {"app": app_id}
    )


async def base_release(db: Executor, app_id: str) -> Row | None:
    """What a config change or a scale starts from: the desired release, else the newest
    (one that failed, perhaps for want of the very config var being set)."""
    return await desired(db, app_id) or await newest(db, app_id)


async def get_by_version(db: Executor, app_id: str, version: int) -> Row | None:
    return await db.fetch_one(
        f"{_WITH_STATUS} WHERE r.app_id = :app AND r.version = :version",
        {"app": app_id, "version": version},
    )


async def get_by_id(db: Executor, release_id: str) -> Row | None:
    return await db.fetch_one(f"{_WITH_STATUS} WHERE r.id = :id", {"id": release_id})


async def previous_success(db: Executor, app_id: str) -> Row | None:
    """The newest release, other than the one running now, whose rollout succeeded (it ran
    and was superseded): what a rollback without a target goes back to."""
    rows = await db.fetch_all(
        "SELECT release_id, status FROM deployments WHERE app_id = :app"
        " AND release_id IS NOT NULL AND status IN ('running', 'superseded')"
        " ORDER BY created_at DESC, id DESC LIMIT 50",
        {"app": app_id},
    )
    running = {row["release_id"] for row in rows if row["status"] == "running"}
    for row in rows:
        if row["release_id"] not in running:
            return await get_by_id(db, row["release_id"])
    return None


async def list_page(db: Executor, app_id: str, *, limit: int, before: int | None) -> list[Row]:
    """Newest first; ``before``: only versions below it (the next page)."""
    where = " AND r.version < :before" if before is not None else ""
    return await db.fetch_all(
        f"{_WITH_STATUS} WHERE r.app_id = :app{where} ORDER BY r.version DESC LIMIT :limit",
        {"app": app_id, "before": before, "limit": limit},
    )


RESTARTS_SHOWN = 10  # per release in the history; ``restarts`` counts them all


async def with_restarts(db: Executor, rows: list[Row]) -> list[Row]:
    """``rows`` with ``restarted``: each release's newest restarts (``deployment_id``,
    ``status``, ``created_by_email``, ``created_at``), newest first."""
    placeholders, params = in_list("r", (row["id"] for row in rows))
    found: dict[str, list[Row]] = {row["id"]: [] for row in rows}
    if params:
        restarts = await db.fetch_all(
            "SELECT d.id AS deployment_id, d.release_id, d.status, d.created_at,"
            " u.email AS created_by_email FROM deployments d"
            " LEFT JOIN users u ON u.id = d.created_by"
            f" WHERE d.reason = 'restart' AND d.release_id IN ({placeholders})"
            " ORDER BY d.created_at DESC, d.id DESC",
            params,
        )
        for item in restarts:
            shown = found[item.pop("release_id")]
            if len(shown) < RESTARTS_SHOWN:
                shown.append(item)
    return [{**row, "restarted": found[row["id"]]} for row in rows]


async def propose(tx: Executor, app_id: str, make: Proposer) -> Outcome:
    """Make the release ``make`` proposes, unless the app's desired release is that tuple.
    Runs in the caller's transaction, which holds the app's lock (``deployments.lock_app``);
    the caller wakes the worker after the commit."""
    current = await desired(tx, app_id)
    base = current or await newest(tx, app_id)
    proposal = await make(tx, base)
    base_overrides = tuple(sorted(config_vars.decode(base["overrides"]))) if base else ()
    if current is not None and ReleaseSpec.of(current) == proposal.spec:
        deployment = await get_deployment(tx, current["deployment_id"])
        assert deployment is not None
        return Outcome(current, deployment, False, base_overrides)
    release_id = await _insert(tx, app_id, proposal)
    deployment_id = await insert_deployment(tx, release_id)
    await add_event(tx, deployment_id, "pending", "deployment created")
    release = await get_by_id(tx, release_id)
    deployment = await get_deployment(tx, deployment_id)
    assert release is not None and deployment is not None
    return Outcome(release, deployment, True, base_overrides)


async def restart(tx: Executor, app_id: str, *, created_by: str | None) -> Outcome:
    """A new rollout of the app's running release (in the caller's transaction, holding
    the app's lock). Conflict when nothing runs or another rollout is under way."""
    current = await desired(tx, app_id)
    if current is None or current["status"] != "running":
        if current is None:
            raise Conflict("the app has no release running to restart; deploy it first")
        raise Conflict(
            f"release v{current['version']} is still rolling out ({current['status']});"
            " restart it once it runs"
        )
    deployment_id = await insert_deployment(
        tx, current["id"], created_by=created_by, reason="restart"
    )
    await add_event(tx, deployment_id, "pending", f"restart of v{current['version']} requested")
    deployment = await get_deployment(tx, deployment_id)
    assert deployment is not None
    overrides = tuple(sorted(config_vars.decode(current["overrides"])))
    return Outcome(current, deployment, True, overrides)


async def _insert(tx: Executor, app_id: str, proposal: Proposal) -> str:
    latest = await tx.fetch_value(
        "SELECT MAX(version) FROM releases WHERE app_id = :app", {"app": app_id}
    )
    spec = asdict(proposal.spec)
    release_id = str(uuid.uuid4())
    await tx.execute(
        "INSERT INTO releases (id, app_id, version, kind, description, artifact_digest,"
        " config_version, overrides, env, runtime, node_version, start_command, replicas,"
        " health_path, rolled_back_to, created_by, created_at) VALUES (:id, :app_id, :version,"
        " :kind, :description, :artifact_digest, :config_version, :overrides, :env, :runtime,"
        " :node_version, :start_command, :replicas, :health_path, :rolled_back_to,"
        " :created_by, :created_at)",
        {
            **spec,
            "overrides": config_vars.encode(proposal.spec.overrides),
            "id": release_id,
            "app_id": app_id,
            "version": int(latest or 0) + 1,
            "kind": proposal.kind,
            "description": proposal.description[:500],
            "env": json.dumps(proposal.env, sort_keys=True),
            "rolled_back_to": proposal.rolled_back_to,
            "created_by": proposal.created_by,
            "created_at": now_iso(),
        },
    )
    return release_id

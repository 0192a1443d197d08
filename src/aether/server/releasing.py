"""Making releases: deploy, config change, scale and rollback, each one transaction.

Each operation builds the release it wants from the app's current one (inside the
transaction that writes it, :func:`aether.store.releases.propose`), so the whole tuple —
artifact, config version, one-off environment, runtime, start command, scale, health check —
decides whether anything changes; an equal tuple answers the running release and restarts
nothing. Values are sealed with the primary key the database names, read in that same
transaction (:mod:`aether.store.secret_keys`).

What each carries over from the current release: a deploy keeps its scale and health path
when the request leaves them out; a config change or a scale keeps everything else
(one-off ``--env`` values included: they last until the next deploy); a rollback takes the
target's code, config and settings but keeps the current scale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aether.errors import Conflict
from aether.models import Release, check_environment, release_from
from aether.sealing import KeyRing, SealedEnv
from aether.server.metrics import DEPLOYMENTS_CREATED
from aether.server.state import ServerState
from aether.store import config_vars, releases, wakeups
from aether.store.database import Executor, Row
from aether.store.deployments import lock_app
from aether.store.releases import Outcome, Proposal, ReleaseSpec
from aether.store.secret_keys import sealing_key_id


@dataclass(frozen=True)
class DeployRequest:
    """A deploy's own fields; ``None`` for replicas/health_path means "keep the current"."""

    artifact_digest: str
    overrides: Mapping[str, str]
    runtime: str = "nodejs"
    node_version: str | None = None
    start_command: str | None = None
    replicas: int | None = None
    health_path: str | None = None
    keep_health_path: bool = True  # the request left health_path out


@dataclass(frozen=True)
class ConfigOutcome:
    snapshot: config_vars.Snapshot
    changed: list[str]
    not_set: list[str]
    rollout: Outcome | None  # None: nothing changed, staged, or no release to restart


async def deploy(state: ServerState, app: Row, who: str | None, req: DeployRequest) -> Outcome:
    ring = state.keyring

    async def make(tx: Executor, base: Row | None) -> Proposal:
        kid = await sealing_key_id(tx, ring)
        base_spec = ReleaseSpec.of(base) if base is not None else None
        overrides = _sealed_overrides(ring, kid, app["id"], req.overrides, base_spec)
        config = await config_vars.current(tx, app["id"])
        _check_size(ring, app["id"], config.vars, overrides)
        spec = ReleaseSpec(
            artifact_digest=req.artifact_digest,
            config_version=config.version,
            overrides=overrides,
            runtime=req.runtime,
            node_version=req.node_version,
            start_command=req.start_command,
            replicas=req.replicas or (base_spec.replicas if base_spec else 1),
            health_path=_health_path(req, base_spec),
        )
        description = f"Deploy {req.artifact_digest[:12]}"
        if req.overrides:
            description += f" with one-off {', '.join(sorted(req.overrides))}"
        return Proposal(spec, "deploy", description, _fingerprints(config.vars, overrides), who)

    return await _propose(state, app["id"], make)


def _health_path(req: DeployRequest, base: ReleaseSpec | None) -> str | None:
    if req.keep_health_path and req.health_path is None:
        return base.health_path if base else None
    return req.health_path


def _sealed_overrides(
    ring: KeyRing, kid: str, app_id: str, wanted: Mapping[str, str], base: ReleaseSpec | None
) -> SealedEnv:
    """The one-off values sealed — as the base release's very boxes when they are equal, so
    that redeploying with the same ``--env`` is the same tuple."""
    if base is not None and set(base.overrides) == set(wanted):
        if ring.unseal_env(base.overrides, app_id=app_id) == dict(wanted):
            return base.overrides
    return {
        name: ring.seal(value, kid=kid, app_id=app_id, name=name)
        for name, value in sorted(wanted.items())
    }


def _fingerprints(config: SealedEnv, overrides: SealedEnv) -> dict[str, str]:
    """name → fingerprint of the release's whole environment (overrides win)."""
    merged = {**config, **overrides}
    return {name: merged[name]["fp"] for name in sorted(merged)}


def _check_size(ring: KeyRing, app_id: str, config: SealedEnv, overrides: SealedEnv) -> None:
    merged = {**config, **overrides}
    check_environment(ring.unseal_env(merged, app_id=app_id))


async def rollback(state: ServerState, app: Row, who: str | None, target: Row) -> Outcome:
    """A release of ``target``'s artifact, config and settings at the current scale; the
    app's config becomes the target's (later deploys take it)."""

    async def make(tx: Executor, base: Row | None) -> Proposal:
        spec = ReleaseSpec.of(target)
        if base is not None:
            spec = replace(spec, replicas=int(base["replicas"]))
        await config_vars.point_to(tx, app["id"], spec.config_version)
        description = f"Rollback to v{target['version']}"
        env = _json_env(target["env"])
        return Proposal(spec, "rollback", description, env, who, target["version"])

    return await _propose(state, app["id"], make)


async def scale(state: ServerState, app: Row, who: str | None, replicas: int) -> Outcome:
    async def make(tx: Executor, base: Row | None) -> Proposal:
        if base is None:
            raise Conflict(f"app {app['name']!r} has no release to scale yet; deploy it first")
        spec = replace(ReleaseSpec.of(base), replicas=replicas)
        description = f"Scale to {replicas} replica{'s' if replicas != 1 else ''}"
        if replicas == 0:
            description += " (stopped)"
        return Proposal(spec, "scale", description, _json_env(base["env"]), who)

    return await _propose(state, app["id"], make)


async def restart(state: ServerState, app: Row, who: str | None) -> Outcome:
    """Another rollout of the release that runs (a new deployment of it, reason
    ``restart``): the runtime replaces every instance, health-gated, like a deploy."""
    async with state.db.transaction() as tx:
        await lock_app(tx, app["id"])
        outcome = await releases.restart(tx, app["id"], created_by=who)
    _announce(outcome)
    return outcome


async def change_config(
    state: ServerState,
    app: Row,
    who: str | None,
    *,
    set_vars: Mapping[str, str],
    unset: Sequence[str],
    restart: bool,
) -> ConfigOutcome:
    """A new config version (when anything changes) and, with ``restart``, a release of the
    current code with it — one transaction."""
    ring, app_id = state.keyring, app["id"]
    outcome: ConfigOutcome | None = None
    async with state.db.transaction() as tx:
        await lock_app(tx, app_id)
        kid = await sealing_key_id(tx, ring)
        base = await config_vars.current(tx, app_id)
        change = config_vars.apply_changes(
            base.vars, set_vars=set_vars, unset=unset, ring=ring, kid=kid, app_id=app_id
        )
        if not change.changed:
            outcome = ConfigOutcome(base, [], change.not_set, None)
        else:
            check_environment(ring.unseal_env(change.vars, app_id=app_id))
            description = _describe_change(set_vars, unset, change.changed)
            version = await config_vars.add_version(
                tx, app_id, change.vars, description=description, created_by=who
            )
            snapshot = config_vars.Snapshot(version, change.vars)
            rollout = None
            if restart:
                rollout = await _config_release(tx, app_id, snapshot, description, who, ring)
            outcome = ConfigOutcome(snapshot, change.changed, change.not_set, rollout)
    _announce(outcome.rollout)
    return outcome


async def _config_release(
    tx: Executor,
    app_id: str,
    snapshot: config_vars.Snapshot,
    description: str,
    who: str | None,
    ring: KeyRing,
) -> Outcome | None:
    async def make(tx: Executor, base: Row | None) -> Proposal:
        assert base is not None
        spec = replace(ReleaseSpec.of(base), config_version=snapshot.version)
        _check_size(ring, app_id, snapshot.vars, spec.overrides)
        env = _fingerprints(snapshot.vars, spec.overrides)
        return Proposal(spec, "config", description, env, who)

    if await releases.base_release(tx, app_id) is None:
        return None  # never deployed: the first deploy takes the config
    return await releases.propose(tx, app_id, make)


def _describe_change(set_vars: Mapping[str, str], unset: Sequence[str], changed: list[str]) -> str:
    done = set(changed)
    parts = []
    names = [name for name in set_vars if name in done]
    if names:
        parts.append("Set " + ", ".join(names))
    gone = [name for name in unset if name in done]
    if gone:
        parts.append(("unset " if parts else "Unset ") + ", ".join(gone))
    return "; ".join(parts)


def _json_env(raw: Any) -> dict[str, str]:
    value = raw if isinstance(raw, dict) else json.loads(raw or "{}")
    return {str(k): str(v) for k, v in value.items()}


async def _propose(state: ServerState, app_id: str, make: releases.Proposer) -> Outcome:
    async with state.db.transaction() as tx:
        await lock_app(tx, app_id)
        outcome = await releases.propose(tx, app_id, make)
    _announce(outcome)
    return outcome


async def shown(db: Executor, rows: list[Row]) -> list[Release]:
    """Releases as the API shows them, each with its restarts."""
    return [release_from(row) for row in await releases.with_restarts(db, rows)]


async def shown_one(db: Executor, row: Row) -> Release:
    return (await shown(db, [row]))[0]


def _announce(outcome: Outcome | None) -> None:
    """After the commit: wake the worker and count the new deployment."""
    if outcome is not None and outcome.created:
        DEPLOYMENTS_CREATED.inc()
        wakeups.poke(wakeups.NEW_DEPLOYMENT)

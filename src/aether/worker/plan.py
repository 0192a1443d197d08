"""The reconcile plan: desired state vs what the runtime observes → the actions to take.

Pure: no I/O, no clock. The loop feeds it the app's deployments as the store sees them and the
runtime's :class:`~aether.worker.runtimes.base.Observed`, and applies the actions it returns in
order. Running the plan again after the actions succeeded yields no actions (level-triggered:
a restarted worker converges to the same state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aether.worker.runtimes.base import Observed

# Statuses of deployments that may still become (or are) the one serving.
ACTIVE = ("pending", "deploying", "running")


@dataclass(frozen=True)
class DeploymentState:
    """The part of a deployment row the plan looks at; ``seq`` orders by creation (newest
    highest)."""

    id: str
    status: str
    seq: int


@dataclass(frozen=True)
class Deploy:
    """Put ``deployment_id`` on the runtime; ``restart`` when it was already running (a
    restarted server, a lost process) so its status stays ``running``."""

    deployment_id: str
    restart: bool = False


@dataclass(frozen=True)
class MarkRunning:
    """The runtime already serves the desired deployment: record it as running."""

    deployment_id: str


@dataclass(frozen=True)
class Supersede:
    """Older deployments that will never serve again now that a newer one runs."""

    deployment_ids: tuple[str, ...]


@dataclass(frozen=True)
class Remove:
    """Nothing is desired but the runtime still runs something: stop it."""


Action = Deploy | MarkRunning | Supersede | Remove


def desired_deployment(deployments: Sequence[DeploymentState]) -> DeploymentState | None:
    """The newest deployment that has not failed (superseded ones only when nothing newer is
    left, e.g. after the newer ones failed)."""
    candidates = [d for d in deployments if d.status != "failed"]
    return max(candidates, key=lambda d: d.seq, default=None)


def plan(deployments: Sequence[DeploymentState], observed: Observed | None) -> list[Action]:
    """The actions that make the runtime and the store match the desired deployment."""
    desired = desired_deployment(deployments)
    if desired is None:
        return [Remove()] if observed is not None and observed.deployment_id else []
    serving = observed is not None and observed.deployment_id == desired.id
    if not serving:
        was_running = desired.status in ("running", "superseded")
        return [Deploy(desired.id, restart=was_running)]
    actions: list[Action] = []
    if desired.status != "running":
        actions.append(MarkRunning(desired.id))
    stale = _stale(deployments, desired)
    if stale:
        actions.append(Supersede(stale))
    return actions


def _stale(deployments: Sequence[DeploymentState], desired: DeploymentState) -> tuple[str, ...]:
    """Older deployments still marked active: the desired one replaced them."""
    older = (d for d in deployments if d.seq < desired.seq and d.status in ACTIVE)
    return tuple(d.id for d in sorted(older, key=lambda d: d.seq))

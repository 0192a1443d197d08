"""The reconcile plan: desired state vs what the runtime observes → the actions to take.

Pure: no I/O, no clock. The loop feeds it the app's deployments as the store sees them and the
runtime's :class:`~aether.worker.runtimes.base.Observed`, and applies the actions it returns in
order. Running the plan again after the actions succeeded yields no actions that change
anything (level-triggered: a restarted worker converges to the same state).

The plan never removes a workload. The desired state of an app becomes "nothing runs" only by
an explicit act — deleting the app, which the loop handles — never because its deployments
failed: when every release failed, whatever the runtime still runs is left alone
(:class:`KeepWorkload`), since the last release that ran is better than none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aether.worker.runtimes.base import Observed

# Statuses of deployments that may still become (or are) the one serving.
ACTIVE = ("pending", "deploying", "running")
# Statuses of deployments that served once: bringing one back is a restart, not a rollout.
SERVED = ("running", "superseded")


@dataclass(frozen=True)
class DeploymentState:
    """The part of a deployment row the plan looks at; ``seq`` orders by creation (newest
    highest)."""

    id: str
    status: str
    seq: int


@dataclass(frozen=True)
class Deploy:
    """Put ``deployment_id`` on the runtime; ``restart`` when it served before (a restarted
    worker, a lost process, a newer release that failed) so its status stays as it is.
    ``restores`` names the newer deployment whose failure this restart undoes."""

    deployment_id: str
    restart: bool = False
    restores: str | None = None


@dataclass(frozen=True)
class MarkRunning:
    """The runtime already serves the desired deployment: record it as running."""

    deployment_id: str


@dataclass(frozen=True)
class Supersede:
    """Older deployments that will never serve again now that a newer one runs."""

    deployment_ids: tuple[str, ...]


@dataclass(frozen=True)
class KeepWorkload:
    """Every release of the app failed, yet the runtime still holds a workload for it: leave
    it as it is and say so. ``deployment_id`` is the newest failed deployment (where the note
    goes; None when the app has none left), ``serving`` what the runtime reports running."""

    deployment_id: str | None
    serving: str | None


Action = Deploy | MarkRunning | Supersede | KeepWorkload


def desired_deployment(deployments: Sequence[DeploymentState]) -> DeploymentState | None:
    """The newest deployment that has not failed (superseded ones only when nothing newer is
    left, e.g. after the newer ones failed)."""
    candidates = [d for d in deployments if d.status != "failed"]
    return max(candidates, key=lambda d: d.seq, default=None)


def plan(deployments: Sequence[DeploymentState], observed: Observed | None) -> list[Action]:
    """The actions that make the runtime and the store match the desired deployment."""
    desired = desired_deployment(deployments)
    if desired is None:
        return _nothing_desired(deployments, observed)
    serving = observed is not None and observed.deployment_id == desired.id
    if not serving:
        return [_deploy(deployments, desired)]
    actions: list[Action] = []
    if desired.status != "running":
        actions.append(MarkRunning(desired.id))
    stale = _stale(deployments, desired)
    if stale:
        actions.append(Supersede(stale))
    return actions


def changes_anything(actions: Sequence[Action]) -> bool:
    """Whether applying ``actions`` moves the store or the runtime (a note does not), i.e.
    whether the loop should look at the app again at once."""
    return any(not isinstance(action, KeepWorkload) for action in actions)


def _deploy(deployments: Sequence[DeploymentState], desired: DeploymentState) -> Deploy:
    if desired.status not in SERVED:
        return Deploy(desired.id)
    newer_failed = [d for d in deployments if d.seq > desired.seq and d.status == "failed"]
    restores = max(newer_failed, key=lambda d: d.seq).id if newer_failed else None
    return Deploy(desired.id, restart=True, restores=restores)


def _nothing_desired(
    deployments: Sequence[DeploymentState], observed: Observed | None
) -> list[Action]:
    if observed is None:
        return []
    newest = max(deployments, key=lambda d: d.seq, default=None)
    return [KeepWorkload(newest.id if newest else None, observed.deployment_id)]


def _stale(deployments: Sequence[DeploymentState], desired: DeploymentState) -> tuple[str, ...]:
    """Older deployments still marked active: the desired one replaced them."""
    older = (d for d in deployments if d.seq < desired.seq and d.status in ACTIVE)
    return tuple(d.id for d in sorted(older, key=lambda d: d.seq))

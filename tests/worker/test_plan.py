"""The reconcile plan: desired vs observed → actions (pure, so tested densely)."""

from __future__ import annotations

import pytest

from aether.worker.plan import (
    Deploy,
    DeploymentState,
    KeepWorkload,
    MarkRunning,
    Supersede,
    changes_anything,
    desired_deployment,
    plan,
)
from aether.worker.runtimes.base import Observed


def dep(id_: str, status: str, seq: int) -> DeploymentState:
    return DeploymentState(id=id_, status=status, seq=seq)


def serving(id_: str | None, healthy: bool = True) -> Observed:
    return Observed(deployment_id=id_, healthy=healthy, endpoint="http://127.0.0.1:1")


def test_nothing_desired_nothing_running_is_a_no_op() -> None:
    assert plan([], None) == []


def test_a_workload_without_deployments_is_kept_not_removed() -> None:
    assert plan([], serving("a")) == [KeepWorkload(None, "a")]


def test_when_every_release_failed_the_last_running_one_is_kept() -> None:
    # The history the old worker wrote: the running release marked failed by a stale status.
    deployments = [dep("a", "failed", 1), dep("b", "failed", 2)]
    assert plan(deployments, serving("a")) == [KeepWorkload("b", "a")]


def test_a_workload_the_runtime_cannot_name_is_kept_too() -> None:
    # Kubernetes: a Deployment whose rollout has not completed reports no deployment id.
    assert plan([dep("a", "failed", 1)], serving(None)) == [KeepWorkload("a", None)]


def test_every_release_failed_and_nothing_runs_is_a_no_op() -> None:
    assert plan([dep("a", "failed", 1)], None) == []


@pytest.mark.parametrize(
    "deployments",
    [
        [],
        [dep("a", "failed", 1)],
        [dep("a", "superseded", 1), dep("b", "failed", 2)],
        [dep("a", "running", 1), dep("b", "failed", 2), dep("c", "failed", 3)],
        [dep("a", "running", 1), dep("b", "pending", 2)],
    ],
)
@pytest.mark.parametrize("observed", [None, "a", "b", "other", ""])
def test_no_history_ever_plans_a_removal(
    deployments: list[DeploymentState], observed: str | None
) -> None:
    seen = None if observed is None else serving(observed or None)
    actions = plan(deployments, seen)
    assert all(isinstance(a, Deploy | MarkRunning | Supersede | KeepWorkload) for a in actions)
    kept = [a for a in actions if isinstance(a, KeepWorkload)]
    assert not kept or (seen is not None and actions == kept)


def test_a_note_alone_does_not_wake_the_loop_again() -> None:
    assert not changes_anything([KeepWorkload("a", "a")])
    assert not changes_anything([])
    assert changes_anything([Deploy("a")])
    assert changes_anything([MarkRunning("a"), Supersede(("b",))])


def test_new_pending_deployment_is_deployed() -> None:
    assert plan([dep("a", "pending", 1)], None) == [Deploy("a")]


def test_deploying_deployment_after_a_worker_crash_is_deployed_again() -> None:
    assert plan([dep("a", "deploying", 1)], None) == [Deploy("a")]


def test_running_deployment_with_nothing_observed_restarts_it() -> None:
    assert plan([dep("a", "running", 1)], None) == [Deploy("a", restart=True)]


def test_running_deployment_the_runtime_does_not_report_serving_is_restarted() -> None:
    # Kubernetes after a worker restart mid-rollout: the template is there, not rolled out.
    assert plan([dep("a", "running", 1)], serving(None)) == [Deploy("a", restart=True)]


def test_running_and_serving_is_converged() -> None:
    assert plan([dep("a", "running", 1)], serving("a")) == []


def test_unhealthy_but_serving_is_left_to_the_supervisor() -> None:
    assert plan([dep("a", "running", 1)], serving("a", healthy=False)) == []


def test_newer_pending_replaces_the_running_one() -> None:
    deployments = [dep("a", "running", 1), dep("b", "pending", 2)]
    assert plan(deployments, serving("a")) == [Deploy("b")]


def test_serving_desired_but_not_marked_running_is_marked_and_old_superseded() -> None:
    deployments = [dep("a", "running", 1), dep("b", "deploying", 2)]
    assert plan(deployments, serving("b")) == [MarkRunning("b"), Supersede(("a",))]


def test_failed_newest_falls_back_to_the_previous_running_one() -> None:
    deployments = [dep("a", "running", 1), dep("b", "failed", 2)]
    assert plan(deployments, serving("a")) == []


def test_failed_newest_with_nothing_observed_restarts_the_previous() -> None:
    deployments = [dep("a", "running", 1), dep("b", "failed", 2)]
    assert plan(deployments, None) == [Deploy("a", restart=True, restores="b")]


def test_failed_newest_still_on_the_runtime_is_replaced_by_the_previous() -> None:
    # Kubernetes with Recreate: the failed release's template is what the cluster holds.
    deployments = [dep("a", "running", 1), dep("b", "failed", 2)]
    assert plan(deployments, serving("b", healthy=False)) == [
        Deploy("a", restart=True, restores="b")
    ]
    assert plan(deployments, serving(None)) == [Deploy("a", restart=True, restores="b")]


def test_two_failures_in_a_row_restore_the_last_good_release() -> None:
    deployments = [dep("a", "running", 1), dep("b", "failed", 2), dep("c", "failed", 3)]
    assert plan(deployments, serving("c", healthy=False)) == [
        Deploy("a", restart=True, restores="c")
    ]
    assert plan(deployments, serving("a")) == []


def test_a_failure_older_than_the_desired_release_is_not_a_restore() -> None:
    deployments = [dep("a", "failed", 1), dep("b", "running", 2)]
    assert plan(deployments, None) == [Deploy("b", restart=True)]


def test_a_pending_release_after_a_failure_is_a_plain_deploy() -> None:
    deployments = [dep("a", "running", 1), dep("b", "failed", 2), dep("c", "pending", 3)]
    assert plan(deployments, serving("a")) == [Deploy("c")]


def test_older_pending_deployments_are_superseded_once_a_newer_one_runs() -> None:
    deployments = [
        dep("a", "superseded", 1),
        dep("b", "pending", 2),
        dep("c", "deploying", 3),
        dep("d", "running", 4),
    ]
    assert plan(deployments, serving("d")) == [Supersede(("b", "c"))]


def test_newer_deployments_are_never_superseded() -> None:
    deployments = [dep("a", "running", 1), dep("b", "pending", 2)]
    assert desired_deployment(deployments) == dep("b", "pending", 2)
    assert Supersede(("b",)) not in plan(deployments, serving("b"))


def test_superseded_is_desired_only_when_everything_newer_failed() -> None:
    deployments = [dep("a", "superseded", 1), dep("b", "failed", 2)]
    assert plan(deployments, None) == [Deploy("a", restart=True, restores="b")]
    assert plan(deployments, serving("a")) == [MarkRunning("a")]


@pytest.mark.parametrize("status", ["pending", "deploying", "running", "superseded"])
def test_desired_is_always_the_highest_seq_non_failed(status: str) -> None:
    deployments = [dep("x", status, 7), dep("y", "failed", 9), dep("z", "running", 3)]
    assert desired_deployment(deployments) == dep("x", status, 7)


def test_plan_is_idempotent_after_its_actions_apply() -> None:
    deployments = [dep("a", "running", 1), dep("b", "deploying", 2)]
    assert plan(deployments, serving("b"))
    after = [dep("a", "superseded", 1), dep("b", "running", 2)]
    assert plan(after, serving("b")) == []

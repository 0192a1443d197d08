"""The reconcile plan: desired vs observed → actions (pure, so tested densely)."""

from __future__ import annotations

import pytest

from aether.worker.plan import (
    Deploy,
    DeploymentState,
    MarkRunning,
    Remove,
    Supersede,
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


def test_nothing_desired_but_something_running_removes_it() -> None:
    assert plan([], serving("a")) == [Remove()]


def test_only_failed_deployments_and_a_leftover_process_removes_it() -> None:
    assert plan([dep("a", "failed", 1)], serving("a")) == [Remove()]


def test_observed_without_a_deployment_id_needs_no_removal() -> None:
    assert plan([], serving(None)) == []


def test_new_pending_deployment_is_deployed() -> None:
    assert plan([dep("a", "pending", 1)], None) == [Deploy("a")]


def test_deploying_deployment_after_a_worker_crash_is_deployed_again() -> None:
    assert plan([dep("a", "deploying", 1)], None) == [Deploy("a")]


def test_running_deployment_with_nothing_observed_restarts_it() -> None:
    assert plan([dep("a", "running", 1)], None) == [Deploy("a", restart=True)]


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
    assert plan(deployments, None) == [Deploy("a", restart=True)]


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
    assert plan(deployments, None) == [Deploy("a", restart=True)]
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

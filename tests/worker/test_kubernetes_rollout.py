"""Reading a rollout from Deployment status and pods (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from aether.worker.runtimes.kubernetes_rollout import (
    COMPLETE,
    FAILED,
    PROGRESSING,
    assess,
    pod_problem,
)


def deployment(*, generation: int = 2, wanted: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": wanted},
        "status": status,
    }


def pod(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "hello-1"}, "status": status}


def waiting(name: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, **extra}}}


def test_unobserved_generation_is_progressing_even_if_counts_look_done() -> None:
    stale = deployment(observedGeneration=1, updatedReplicas=2, availableReplicas=2, replicas=2)
    assert assess(stale, []).state == PROGRESSING


def test_all_updated_and_available_is_complete() -> None:
    done = deployment(observedGeneration=2, updatedReplicas=2, availableReplicas=2, replicas=2)
    assert assess(done, []).state == COMPLETE


def test_old_replicas_still_running_keep_it_progressing() -> None:
    rolling = deployment(observedGeneration=2, updatedReplicas=2, availableReplicas=3, replicas=3)
    progress = assess(rolling, [])
    assert progress.state == PROGRESSING and "1 old still running" in progress.message


def test_progress_deadline_exceeded_fails_with_the_pods_reason() -> None:
    stuck = deployment(
        observedGeneration=2,
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    )
    unscheduled = pod(
        conditions=[
            {"type": "PodScheduled", "status": "False", "message": "0/3 nodes: Insufficient cpu"}
        ]
    )
    progress = assess(stuck, [unscheduled])
    assert progress.state == FAILED
    assert "deadline" in progress.message and "Insufficient cpu" in progress.message


def test_replica_failure_condition_fails() -> None:
    quota = deployment(
        observedGeneration=2,
        conditions=[
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": "exceeded quota",
            }
        ],
    )
    assert assess(quota, []).message == "cannot create pods: exceeded quota"


def test_fetch_network_failures_are_retried_a_few_times_then_fatal() -> None:
    def fetch(restarts: int) -> dict[str, Any]:
        return {
            "name": "fetch",
            "restartCount": restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {
                "terminated": {"exitCode": 40, "message": "aether: error: cannot reach the API"}
            },
        }

    early = pod_problem(pod(initContainerStatuses=[fetch(1)]))
    late = pod_problem(pod(initContainerStatuses=[fetch(3)]))
    assert early is not None and not early.fatal
    assert late is not None and late.fatal and "exit 40" in late.message


@pytest.mark.parametrize(
    ("container", "fatal", "text"),
    [
        (
            waiting("app", "ImagePullBackOff", message="not found"),
            True,
            "cannot pull image (app): not found",
        ),
        (waiting("app", "ErrImagePull"), False, "retrying"),
        (waiting("app", "InvalidImageName"), True, "invalid image name"),
        (
            waiting("app", "CreateContainerConfigError", message="secret x not found"),
            True,
            "secret x not found",
        ),
        (waiting("app", "ContainerCreating"), None, ""),
    ],
)
def test_container_waiting_reasons(
    container: dict[str, Any], fatal: bool | None, text: str
) -> None:
    problem = pod_problem(pod(containerStatuses=[container]))
    if fatal is None:
        assert problem is None
    else:
        assert problem is not None and problem.fatal is fatal and text in problem.message


def test_failed_pod_phase_is_fatal() -> None:
    problem = pod_problem(pod(phase="Failed", reason="Evicted", message="low on memory"))
    assert problem is not None and problem.fatal and "low on memory" in problem.message


def test_a_fatal_pod_problem_fails_the_rollout_before_the_deadline() -> None:
    crashing = {
        "name": "app",
        "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 137}},
    }
    progress = assess(deployment(observedGeneration=2), [pod(containerStatuses=[crashing])])
    assert progress == progress.__class__(
        FAILED, "pod hello-1: app keeps crashing (exit 137, 4 restarts)"
    )

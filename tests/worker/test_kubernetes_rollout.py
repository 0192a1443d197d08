"""Reading a rollout from Deployment status, ReplicaSets and pods (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from aether.worker.runtimes.kubernetes_rollout import (
    COMPLETE,
    FAILED,
    PROGRESSING,
    Progress,
    assess,
    new_replica_set,
    pod_problem,
    rolled_out,
)

UID = "d-uid"
TEMPLATE = {"metadata": {"labels": {"app_name": "hello", "deployment_id": "v2"}}, "spec": {}}
OLD_TEMPLATE = {"metadata": {"labels": {"app_name": "hello", "deployment_id": "v1"}}, "spec": {}}


def replica_set(name: str, template: dict[str, Any], *, owner: str = UID, **extra: Any) -> dict:
    pod_hash = name.rsplit("-", 1)[1]
    labels = {**template["metadata"]["labels"], "pod-template-hash": pod_hash}
    return {
        "metadata": {
            "name": name,
            "labels": labels,
            "ownerReferences": [{"uid": owner, "controller": True}],
            "creationTimestamp": extra.pop("created", "2024-05-01T10:00:00Z"),
        },
        "spec": {"template": {**copy.deepcopy(template), "metadata": {"labels": labels}}},
        "status": extra.pop("status", {}),
    }


NEW = replica_set("hello-new1", TEMPLATE)
OLD = replica_set("hello-old1", OLD_TEMPLATE)


def condition(reason: str, rs: str, status: str = "False", said: str = "") -> dict[str, str]:
    messages = {
        "ProgressDeadlineExceeded": f'ReplicaSet "{rs}" has timed out progressing.',
        "NewReplicaSetAvailable": f'ReplicaSet "{rs}" has successfully progressed.',
        "ReplicaSetUpdated": f'ReplicaSet "{rs}" is progressing.',
        "NewReplicaSetCreated": f'Created new replica set "{rs}"',
    }
    return {
        "type": "Progressing",
        "status": status,
        "reason": reason,
        "message": said or messages[reason],
    }


def deployment(*, generation: int = 2, wanted: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation, "uid": UID},
        "spec": {"replicas": wanted, "template": TEMPLATE},
        "status": status,
    }


def done(**extra: Any) -> dict[str, Any]:
    counts = {"updatedReplicas": 2, "availableReplicas": 2, "replicas": 2}
    return deployment(observedGeneration=2, **{**counts, **extra})


def pod(rs: dict[str, Any] = NEW, **status: Any) -> dict[str, Any]:
    labels = {"pod-template-hash": rs["metadata"]["labels"]["pod-template-hash"]}
    return {"metadata": {"name": "hello-1", "labels": labels}, "status": status}


def waiting(name: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, **extra}}}


def crashing(restarts: int = 4) -> dict[str, Any]:
    return {
        "name": "app",
        "restartCount": restarts,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 137}},
    }


# --- the generation we wrote comes first ---------------------------------------------------


def test_unobserved_generation_is_progressing_even_if_counts_look_done() -> None:
    stale = deployment(observedGeneration=1, updatedReplicas=2, availableReplicas=2, replicas=2)
    assert assess(stale, [NEW], []).state == PROGRESSING


def test_the_generation_we_wrote_must_be_observed_even_when_the_read_is_older() -> None:
    # A read served from a cache older than our write: generation 2, we wrote 3.
    assert assess(done(), [NEW], [], written_generation=3).state == PROGRESSING
    assert assess(done(), [NEW], [], written_generation=2).state == COMPLETE


def test_nothing_is_judged_before_the_controller_observed_our_write() -> None:
    stuck = deployment(
        observedGeneration=1, conditions=[condition("ProgressDeadlineExceeded", "hello-new1")]
    )
    crashed = pod(containerStatuses=[crashing()])
    assert assess(stuck, [NEW], [crashed]) == Progress(
        PROGRESSING, "waiting for the Deployment controller to see the change"
    )


def test_no_new_replica_set_yet_is_progressing() -> None:
    assert assess(done(), [OLD], []).state == PROGRESSING


# --- counts, in kubectl's order ----------------------------------------------------------------


def test_all_updated_and_available_is_complete() -> None:
    assert assess(done(), [NEW], []) == Progress(COMPLETE, "2/2 replicas available")


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"updatedReplicas": 1}, "1/2 replicas updated, 2 available"),
        ({"replicas": 3}, "1 old replicas still terminating"),
        ({"availableReplicas": 1}, "1/2 updated replicas available"),
    ],
)
def test_counts_short_of_done_keep_it_progressing(counts: dict[str, int], message: str) -> None:
    assert assess(done(**counts), [NEW], []) == Progress(PROGRESSING, message)


# --- conditions count only for the new ReplicaSet ------------------------------------------


def test_progress_deadline_exceeded_for_the_new_replica_set_fails_with_the_pods_reason() -> None:
    stuck = done(
        availableReplicas=0, conditions=[condition("ProgressDeadlineExceeded", "hello-new1")]
    )
    unscheduled = pod(
        conditions=[
            {"type": "PodScheduled", "status": "False", "message": "0/3 nodes: Insufficient cpu"}
        ]
    )
    progress = assess(stuck, [NEW, OLD], [unscheduled])
    assert progress.state == FAILED
    assert "deadline" in progress.message and "Insufficient cpu" in progress.message


def test_a_stale_deadline_naming_an_older_replica_set_is_not_this_rollouts_failure() -> None:
    # The restore case: the template is back to a release whose ReplicaSet exists; the
    # controller keeps the failure it wrote for the release that failed.
    restored = deployment(
        observedGeneration=2,
        updatedReplicas=0,
        replicas=0,
        conditions=[condition("ProgressDeadlineExceeded", "hello-old1")],
    )
    assert assess(restored, [NEW, OLD], []) == Progress(
        PROGRESSING, "0/2 replicas updated, 0 available"
    )


def test_a_condition_naming_no_replica_set_is_not_trusted() -> None:
    unnamed = condition(
        "ProgressDeadlineExceeded", "", said='Deployment "hello" has timed out progressing.'
    )
    assert assess(done(availableReplicas=0, conditions=[unnamed]), [NEW], []).state == PROGRESSING


def test_replica_failure_is_read_from_the_new_replica_set() -> None:
    failing = {
        "conditions": [
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": "exceeded quota",
            }
        ]
    }
    quota = replica_set("hello-new1", TEMPLATE, status=failing)
    old_quota = replica_set("hello-old1", OLD_TEMPLATE, status=failing)
    waiting_for_pods = done(updatedReplicas=0, availableReplicas=0)
    assert assess(waiting_for_pods, [quota], []).message == "cannot create pods: exceeded quota"
    assert assess(waiting_for_pods, [NEW, old_quota], []).state == PROGRESSING


# --- the new ReplicaSet and its pods -------------------------------------------------------------


def test_new_replica_set_is_the_owned_one_with_the_template_ignoring_its_hash() -> None:
    foreign = replica_set("hello-abcd1", TEMPLATE, owner="someone-else")
    later = replica_set("hello-new2", TEMPLATE, created="2024-05-02T10:00:00Z")
    assert new_replica_set(deployment(), [OLD, foreign, later, NEW]) == NEW
    assert new_replica_set(deployment(), [OLD, foreign]) is None


def test_only_the_new_replica_sets_live_pods_are_judged() -> None:
    old_crash = pod(OLD, containerStatuses=[crashing()])
    terminating = pod(containerStatuses=[crashing()])
    terminating["metadata"]["deletionTimestamp"] = "2024-05-01T10:00:00Z"
    rolling = done(updatedReplicas=1)
    assert assess(rolling, [NEW, OLD], [old_crash, terminating]).state == PROGRESSING
    assert assess(rolling, [NEW, OLD], [pod(containerStatuses=[crashing()])]) == Progress(
        FAILED, "pod hello-1: app keeps crashing (exit 137, 4 restarts)"
    )


def test_rolled_out_needs_the_success_to_name_the_new_replica_set() -> None:
    finished = done(conditions=[condition("NewReplicaSetAvailable", "hello-new1", "True")])
    stale = done(conditions=[condition("NewReplicaSetAvailable", "hello-old1", "True")])
    unobserved = deployment(
        generation=3, observedGeneration=2, conditions=finished["status"]["conditions"]
    )
    assert rolled_out(finished, [NEW, OLD])
    assert not rolled_out(stale, [NEW, OLD])
    assert not rolled_out(unobserved, [NEW, OLD])
    assert not rolled_out(finished, [OLD])


# --- pods -----------------------------------------------------------------------------------------


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


def test_a_pod_the_node_ended_is_told_but_not_a_verdict_on_the_release() -> None:
    problem = pod_problem(pod(phase="Failed", reason="Evicted", message="low on memory"))
    assert problem is not None and not problem.fatal and "low on memory" in problem.message


def test_a_fatal_pod_problem_fails_the_rollout_before_the_deadline() -> None:
    progress = assess(done(updatedReplicas=1), [NEW], [pod(containerStatuses=[crashing()])])
    assert progress == Progress(FAILED, "pod hello-1: app keeps crashing (exit 137, 4 restarts)")

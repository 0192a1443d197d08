"""Reading a rollout: Deployment status, its ReplicaSets and the release's pods → progressing,
complete or failed.

Pure functions over the API's dicts, so every state a controller or kubelet can report is easy
to test. The judgement mirrors ``kubectl rollout status``, and is stricter where the Deployment
controller leaves status behind that does not belong to the rollout being followed:

1. Nothing is judged until the controller has seen what we wrote: ``observedGeneration`` must
   reach both the Deployment's ``generation`` and the generation our own write produced.
2. The *new* ReplicaSet is found the way the controller finds it: the one it owns whose pod
   template equals the Deployment's (ignoring the ``pod-template-hash`` label).
3. A ``Progressing`` condition counts only when it names that ReplicaSet. The controller keeps
   a ``ProgressDeadlineExceeded`` written for a release that failed until the restored
   template is available again (it rewrites the condition only when there is none, or on
   progress); kubectl would report that stale failure for the restored release, we do not.
   A condition naming no ReplicaSet (written while the controller had none) is not trusted
   either; the worker's own rollout timeout bounds the wait instead.
4. ``ReplicaFailure`` is read from the new ReplicaSet itself, not from the Deployment's copy
   (which may come from an older ReplicaSet).
5. Only the new ReplicaSet's pods are looked at (by ``pod-template-hash``), terminating ones
   not at all: why they are stuck (the ``fetch`` init container failed, the app crash-loops,
   an image cannot be pulled) fails the rollout before the deadline, with a reason a human can
   act on — kubectl does not look at pods.
6. Then the counts, in kubectl's order: updated replicas, old replicas still terminating,
   available replicas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aether.worker.runtimes.kubernetes_manifests import FETCH_CONTAINER

PROGRESSING = "progressing"
COMPLETE = "complete"
FAILED = "failed"

TEMPLATE_HASH_LABEL = "pod-template-hash"
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
_NAMED = re.compile(r'ReplicaSet "([^"]+)"')

# `aether fetch` exits 40 when the control plane or storage cannot be reached: worth waiting
# for the kubelet's retries. Any other failure (digest mismatch, forbidden, bad signature) is
# final at once.
NETWORK_EXIT = 40
FETCH_RETRIES = 3
FATAL_WAITING = {
    "ImagePullBackOff": "cannot pull image",
    "InvalidImageName": "invalid image name",
    "ErrImageNeverPull": "image not present and pull policy is Never",
    "CreateContainerConfigError": "cannot create the container",
}

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Progress:
    state: str  # progressing | complete | failed
    message: str


@dataclass(frozen=True)
class PodProblem:
    fatal: bool
    message: str


def assess(
    deployment: Obj,
    replica_sets: Sequence[Obj],
    pods: Iterable[Obj],
    *,
    written_generation: int = 0,
) -> Progress:
    """Where the rollout of ``deployment`` stands; ``written_generation`` is the generation our
    write produced (or found, when there was nothing to write)."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = max(_metadata(deployment).get("generation", 0), written_generation)
    if status.get("observedGeneration", 0) < generation:
        return Progress(PROGRESSING, "waiting for the Deployment controller to see the change")
    new_rs = new_replica_set(deployment, replica_sets)
    if new_rs is None:
        return Progress(PROGRESSING, "waiting for the Deployment controller's new ReplicaSet")
    problems = [problem for pod in pods_of(new_rs, pods) if (problem := pod_problem(pod))]
    fatal = next((problem for problem in problems if problem.fatal), None)
    if fatal:
        return Progress(FAILED, fatal.message)
    stalled = _stalled(status, new_rs)
    if stalled:
        detail = f": {problems[0].message}" if problems else ""
        return Progress(FAILED, stalled + detail)
    return _counted(spec, status, problems)


def _counted(spec: Obj, status: Obj, problems: Sequence[PodProblem]) -> Progress:
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if updated < wanted:
        summary = f"{updated}/{wanted} replicas updated, {available} available"
    elif total > updated:
        summary = f"{total - updated} old replicas still terminating"
    elif available < updated:
        summary = f"{available}/{updated} updated replicas available"
    else:
        return Progress(COMPLETE, f"{available}/{wanted} replicas available")
    return Progress(PROGRESSING, summary + "".join(f"; {p.message}" for p in problems[:2]))


def rolled_out(deployment: Obj, replica_sets: Sequence[Obj]) -> bool:
    """The controller finished rolling out the current template (pods may be down since): it
    has seen the current generation and says the *new* ReplicaSet progressed successfully."""
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < _metadata(deployment).get("generation", 0):
        return False
    condition = progressing_condition(status)
    if condition is None or condition.get("reason") != NEW_RS_AVAILABLE:
        return False
    new_rs = new_replica_set(deployment, replica_sets)
    return new_rs is not None and named_replica_set(condition) == _metadata(new_rs).get("name")


def progressing_condition(status: Obj) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)


def named_replica_set(condition: Obj) -> str | None:
    """The ReplicaSet a Deployment condition's message names (the controller always quotes
    it: ``ReplicaSet "shop-8df7cb579" has timed out progressing.``)."""
    match = _NAMED.search(condition.get("message") or "")
    return match[1] if match else None


def new_replica_set(deployment: Obj, replica_sets: Sequence[Obj]) -> Obj | None:
    """The Deployment's new ReplicaSet: owned by it, with its pod template (the controller's
    ``FindNewReplicaSet``: the oldest such one when there are several)."""
    template = (deployment.get("spec") or {}).get("template") or {}
    uid = _metadata(deployment).get("uid")
    matches = [
        rs
        for rs in replica_sets
        if _owned_by(rs, uid) and _without_hash((rs.get("spec") or {}).get("template")) == template
    ]
    return min(matches, key=lambda rs: _metadata(rs).get("creationTimestamp") or "", default=None)


def pods_of(replica_set: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The pods of ``replica_set`` that are not being deleted."""
    wanted = (_metadata(replica_set).get("labels") or {}).get(TEMPLATE_HASH_LABEL)
    return [
        pod
        for pod in pods
        if (_metadata(pod).get("labels") or {}).get(TEMPLATE_HASH_LABEL) == wanted
        and not _metadata(pod).get("deletionTimestamp")
    ]


def _stalled(status: Obj, new_rs: Obj) -> str | None:
    condition = progressing_condition(status)
    name = _metadata(new_rs).get("name")
    if (
        condition is not None
        and condition.get("reason") == DEADLINE_EXCEEDED
        and named_replica_set(condition) == name
    ):
        said = condition.get("message", "")
        return f"the rollout made no progress before its deadline ({said})"
    for failure in (new_rs.get("status") or {}).get("conditions") or []:
        if failure.get("type") == "ReplicaFailure" and failure.get("status") == "True":
            return f"cannot create pods: {failure.get('message') or failure.get('reason')}"
    return None


def _owned_by(replica_set: Obj, uid: str | None) -> bool:
    if uid is None:  # an object read without metadata.uid: trust the label selection
        return True
    owners = _metadata(replica_set).get("ownerReferences") or []
    return any(owner.get("uid") == uid for owner in owners)


def _without_hash(template: Obj | None) -> Obj:
    template = dict(template or {})
    metadata = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != TEMPLATE_HASH_LABEL}
    if labels or "labels" in metadata:
        metadata["labels"] = labels
    template["metadata"] = metadata
    return template


def _metadata(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """The first thing wrong with a pod of the release, if any."""
    name = (pod.get("metadata") or {}).get("name", "?")
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        # With restartPolicy Always only the node ends a pod (eviction, shutdown): the
        # ReplicaSet replaces it, so it is worth telling, not a verdict on the release.
        said = status.get("message") or status.get("reason") or "no reason given"
        return PodProblem(False, f"pod {name} ended: {said}; the controller replaces it")
    for container in status.get("initContainerStatuses") or []:
        if container.get("name") == FETCH_CONTAINER and (
            problem := _fetch_problem(name, container)
        ):
            return problem
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        if problem := _container_problem(name, container):
            return problem
    said = unscheduled(pod)
    return PodProblem(False, said) if said else None


def unscheduled(pod: Obj) -> str | None:
    """Why the scheduler has not placed the pod yet, if it has not."""
    name = _metadata(pod).get("name", "?")
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"pod {name} is not scheduled: {condition.get('message', '')}".rstrip(": ")
    return None


def _fetch_problem(pod: str, container: Mapping[str, Any]) -> PodProblem | None:
    state, last = container.get("state") or {}, container.get("lastState") or {}
    terminated = state.get("terminated") or last.get("terminated")
    if not terminated or terminated.get("exitCode", 0) == 0:
        return None
    code = terminated.get("exitCode")
    retries = container.get("restartCount", 0)
    fatal = code != NETWORK_EXIT or retries >= FETCH_RETRIES
    reason = _last_line(terminated.get("message")) or terminated.get("reason") or "no message"
    return PodProblem(fatal, f"pod {pod}: fetching the artifact failed (exit {code}): {reason}")


def _container_problem(pod: str, container: Mapping[str, Any]) -> PodProblem | None:
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason, name = waiting.get("reason"), container.get("name")
    if reason in FATAL_WAITING:
        detail = waiting.get("message") or container.get("image", "")
        return PodProblem(True, f"pod {pod}: {FATAL_WAITING[reason]} ({name}): {detail}")
    if reason == "ErrImagePull":
        return PodProblem(
            False, f"pod {pod}: pulling image {container.get('image', '')} failed, retrying"
        )
    if reason == "CrashLoopBackOff":
        last = (container.get("lastState") or {}).get("terminated") or {}
        said = _last_line(last.get("message"))
        return PodProblem(
            True,
            f"pod {pod}: {name} keeps crashing (exit {last.get('exitCode', '?')}, "
            f"{container.get('restartCount', 0)} restarts)" + (f": {said}" if said else ""),
        )
    return None


def _last_line(message: str | None) -> str:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""

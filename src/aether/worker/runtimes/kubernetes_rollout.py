"""Reading a rollout: Deployment status + the release's pods → progressing, complete or failed.

Pure functions over the API's dicts, so every state a controller or kubelet can report is easy
to test. The Deployment status says how far the rollout got (``observedGeneration``,
``updatedReplicas``, ``availableReplicas``, the ``Progressing`` condition); the pods say why
it is stuck (the ``fetch`` init container failed, the app crash-loops, an image cannot be
pulled), which becomes the human reason of a failed deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aether.worker.runtimes.kubernetes_manifests import FETCH_CONTAINER

PROGRESSING = "progressing"
COMPLETE = "complete"
FAILED = "failed"

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


@dataclass(frozen=True)
class Progress:
    state: str  # progressing | complete | failed
    message: str


@dataclass(frozen=True)
class PodProblem:
    fatal: bool
    message: str


def assess(deployment: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> Progress:
    """Where the rollout of ``deployment`` stands, given the pods of its release."""
    problems = [problem for pod in pods if (problem := pod_problem(pod))]
    fatal = next((problem for problem in problems if problem.fatal), None)
    if fatal:
        return Progress(FAILED, fatal.message)
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    stalled = _failed_condition(status)
    if stalled:
        detail = f": {problems[0].message}" if problems else ""
        return Progress(FAILED, stalled + detail)
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return Progress(PROGRESSING, "waiting for the Deployment controller to see the change")
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if updated >= wanted and available >= wanted and total <= wanted:
        return Progress(COMPLETE, f"{available}/{wanted} replicas available")
    summary = f"{updated}/{wanted} replicas updated, {available} available"
    if total > updated:
        summary += f", {total - updated} old still running"
    return Progress(PROGRESSING, summary + "".join(f"; {p.message}" for p in problems[:2]))


def _failed_condition(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        kind, reason = condition.get("type"), condition.get("reason")
        if kind == "Progressing" and reason == "ProgressDeadlineExceeded":
            return (
                f"the rollout made no progress before its deadline ({condition.get('message', '')})"
            )
        if kind == "ReplicaFailure" and condition.get("status") == "True":
            return f"cannot create pods: {condition.get('message') or reason}"
    return None


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """The first thing wrong with a pod of the release, if any."""
    name = (pod.get("metadata") or {}).get("name", "?")
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return PodProblem(
            True, f"pod {name} failed: {status.get('message') or status.get('reason')}"
        )
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
    return _scheduling_problem(name, status)


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


def _scheduling_problem(pod: str, status: Mapping[str, Any]) -> PodProblem | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return PodProblem(False, f"pod {pod} is not scheduled: {condition.get('message', '')}")
    return None


def _last_line(message: str | None) -> str:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""

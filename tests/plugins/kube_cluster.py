"""The Deployment controller and the kubelet for tests, over the API's HTTP interface.

:class:`Cluster` takes one step at a time, as a test asks: finish a rollout, time one out,
create a pod. :class:`Controller` takes those steps on its own, the way the real controller
reacts to every change of a Deployment (``kube_controller_manager``'s deployment controller,
as of Kubernetes 1.36):

- a new pod template gets a ReplicaSet ``<deployment>-<pod-template-hash>``, owned by the
  Deployment; a template that comes back (a restore) finds its old ReplicaSet again;
- after each change it writes status: ``observedGeneration``, the replica counts and the
  ``Progressing`` condition, which names the new ReplicaSet: ``Created new replica set "x"``
  (rewritten from whatever was there), ``Found new replica set "x"`` (only when there is no
  condition at all), ``ReplicaSet "x" is progressing.``, ``… has successfully progressed.``
  or, when nothing moved for the deadline, ``… has timed out progressing.``;
- like the real one it never rewrites a ``ProgressDeadlineExceeded`` before the rollout is
  complete, so a restored template finds the failure of the release it replaced, naming that
  release's ReplicaSet, until its own pods are available (the real controller may also replace
  it on the first sign of progress; keeping it longer is the harder case);
- it scales the ReplicaSets like ``Recreate``: the old pods go, then the new ones come; the
  kubelet part moves each new pod from its init container to what :attr:`Controller.pods`
  says for its release (``ready`` by default, ``never-ready``, ``crashing``, ``held``);
- :meth:`Controller.interfere` makes it write status between a client's read and its write.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from plugins.kube_api import DEPLOYMENTS, NAMESPACE, PODS, REPLICASETS, KubeAPI, now_rfc3339

# kubernetes-validate ships schemas for this range; manifests must be valid at both ends.
SUPPORTED_KUBERNETES = ("1.25.0", "1.37.0")
HASH_LABEL = "pod-template-hash"
# The controller spells its template hashes with these characters (no vowels, no 0/1/3).
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

READY, NEVER_READY, CRASHING, HELD = "ready", "never-ready", "crashing", "held"


def template_hash(template: dict[str, Any]) -> str:
    number = int.from_bytes(
        hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:8], "big"
    )
    spelled = ""
    while len(spelled) < 10:
        number, digit = divmod(number, len(_HASH_ALPHABET))
        spelled += _HASH_ALPHABET[digit]
    return spelled


class Refused(AssertionError):
    """The API server refused one of the fixture's own requests."""

    def __init__(self, status: int, answer: Any) -> None:
        super().__init__(f"HTTP {status}: {answer}")
        self.status = status


class Cluster:
    """The controller and kubelet for tests: ReplicaSets, pods and status, written over HTTP."""

    def __init__(self, api: KubeAPI) -> None:
        self.api = api

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, content_type: str
    ) -> dict[str, Any]:
        async with self.api.request(
            method, path, json=body, headers={"Content-Type": content_type}
        ) as resp:
            answer = await resp.json(content_type=None)
            if resp.status >= 400:
                raise Refused(resp.status, answer)
            return answer

    @staticmethod
    def _path(resource: str, name: str = "") -> str:
        group_version, plural = resource.rsplit("/", 1)
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        return f"{prefix}/namespaces/{NAMESPACE}/{plural}" + (f"/{name}" if name else "")

    async def patch(
        self, resource: str, name: str, changes: dict[str, Any], subresource: str = ""
    ) -> dict[str, Any]:
        """A merge patch, like ``kubectl patch --type merge`` (or a controller's status write)."""
        path = self._path(resource, name) + (f"/{subresource}" if subresource else "")
        return await self._send("PATCH", path, changes, "application/merge-patch+json")

    async def patch_status(
        self, resource: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.patch(resource, name, {"status": status}, "status")

    async def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._send("POST", self._path(resource), body, "application/json")

    async def delete(self, resource: str, name: str) -> None:
        await self._send("DELETE", self._path(resource, name), None, "application/json")

    # --- ReplicaSets and pods --------------------------------------------------------

    async def replica_set(self, deployment: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The ReplicaSet of the Deployment's current template, and whether it is new."""
        template = deployment["spec"]["template"]
        pod_hash = template_hash(template)
        name = f"{deployment['metadata']['name']}-{pod_hash}"
        live = self.api.live(REPLICASETS, name)
        if live is not None:
            return live, False
        labels = {**template["metadata"]["labels"], HASH_LABEL: pod_hash}
        selector = {**deployment["spec"]["selector"]["matchLabels"], HASH_LABEL: pod_hash}
        owned = self.api.all_live(REPLICASETS)
        revision = 1 + max(
            (
                int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                for rs in owned
            ),
            default=0,
        )
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": deployment["metadata"]["name"],
                        "uid": deployment["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": deployment["spec"]["replicas"],
                "selector": {"matchLabels": selector},
                "template": {
                    **copy.deepcopy(template),
                    "metadata": {**template["metadata"], "labels": labels},
                },
            },
        }
        return await self.create(REPLICASETS, body), True

    def pods_of(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        selector = deployment["spec"]["selector"]["matchLabels"]
        return [
            pod
            for pod in self.api.all_live(PODS)
            if all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]

    async def create_pod(
        self, deployment: str, suffix: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """A pod of the Deployment's current template (its ReplicaSet), with the given status."""
        live = self.api.live(DEPLOYMENTS, deployment)
        assert live is not None, f"no Deployment {deployment}"
        replica_set, _ = await self.replica_set(live)
        template = replica_set["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{deployment}-{suffix}",
                "namespace": NAMESPACE,
                "labels": dict(template["metadata"]["labels"]),
                "creationTimestamp": now_rfc3339(),
            },
            "spec": template["spec"],
        }
        await self.create(PODS, pod)
        return await self.patch_status(PODS, pod["metadata"]["name"], status)

    # --- one step at a time ----------------------------------------------------------

    async def see_change(self, deployment: str) -> None:
        """The controller's first status write after a spec change: the generation observed,
        the new ReplicaSet named, nothing available yet."""
        live = self.api.live(DEPLOYMENTS, deployment)
        assert live is not None
        replica_set, _ = await self.replica_set(live)
        status = rollout_status(live, available=0, replica_set=replica_set)
        status["updatedReplicas"] = 0
        status["conditions"] = [
            progressing(True, "NewReplicaSetCreated", replica_set, prefix="Created new")
        ]
        await self.patch_status(DEPLOYMENTS, deployment, status)

    async def finish_rollout(self, deployment: str, *, pods: bool = True) -> None:
        """What a healthy rollout looks like: running pods, every replica updated and available."""
        live = self.api.live(DEPLOYMENTS, deployment)
        assert live is not None
        replica_set, _ = await self.replica_set(live)
        replicas = live["spec"]["replicas"]
        if pods:
            revision = live["metadata"]["labels"]["deployment_id"][:8]
            for index in range(replicas):
                if self.api.live(PODS, f"{deployment}-{revision}-{index}") is None:
                    await self.create_pod(deployment, f"{revision}-{index}", running_pod_status())
        status = rollout_status(live, available=replicas, replica_set=replica_set)
        await self.patch_status(DEPLOYMENTS, deployment, status)

    async def deadline_exceeded(self, deployment: str) -> None:
        live = self.api.live(DEPLOYMENTS, deployment)
        assert live is not None
        replica_set, _ = await self.replica_set(live)
        status = rollout_status(live, available=0, replica_set=replica_set)
        status["conditions"] = [
            progressing(False, "ProgressDeadlineExceeded", replica_set, "has timed out progressing")
        ]
        await self.patch_status(DEPLOYMENTS, deployment, status)


class Controller:
    """The Deployment controller and the kubelet, reacting on their own (see the module)."""

    def __init__(
        self, api: KubeAPI, *, deadline_secs: float = 0.6, tick_secs: float = 0.01
    ) -> None:
        self.api = api
        self.cluster = Cluster(api)
        self.deadline_secs = deadline_secs
        self.tick_secs = tick_secs
        self.pods: dict[str, str] = {}  # deployment id → what its pods do (default: ready)
        self._moved: dict[str, float] = {}  # Deployment → when its rollout last progressed
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Controller:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        if self._task.done():  # it crashed: that is a bug of the fixture, say so
            self._task.result()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def interfere(self, deployment: str, times: int = 1) -> None:
        """Write the Deployment's status between the next ``times`` reads and writes of it."""
        self.api.race_next_write("deployments", deployment, times)

    async def _run(self) -> None:
        while True:
            for deployment in self.api.all_live(DEPLOYMENTS):
                if "uid" in deployment["metadata"] and "template" in deployment["spec"]:
                    try:
                        await self.sync(deployment["metadata"]["name"])
                    except Refused as exc:  # deleted under our feet: the next tick sees it
                        if exc.status != 404:
                            raise
            await asyncio.sleep(self.tick_secs)

    async def sync(self, name: str) -> None:
        live = self.api.live(DEPLOYMENTS, name)
        if live is None:
            return
        replica_set, created = await self.cluster.replica_set(live)
        await self._scale(live, replica_set)
        live = self.api.live(DEPLOYMENTS, name)
        if live is None:
            return
        status = self._status(live, replica_set, created)
        if status != live.get("status"):
            await self.cluster.patch_status(DEPLOYMENTS, name, status)

    async def _scale(self, deployment: dict[str, Any], replica_set: dict[str, Any]) -> None:
        """Recreate: old pods go first; then the new ReplicaSet's pods come and move on."""
        pod_hash = replica_set["metadata"]["labels"][HASH_LABEL]
        pods = self.cluster.pods_of(deployment)
        old = [pod for pod in pods if pod["metadata"]["labels"].get(HASH_LABEL) != pod_hash]
        for pod in old:
            await self.cluster.delete(PODS, pod["metadata"]["name"])
        if old:
            return
        for pod in pods:
            await self._kubelet(pod)
        for _ in range(deployment["spec"]["replicas"] - len(pods)):
            suffix = f"{pod_hash}-{uuid.uuid4().hex[:5]}"
            await self.cluster.create_pod(deployment["metadata"]["name"], suffix, init_pod_status())
            self._moved[deployment["metadata"]["name"]] = time.monotonic()

    async def _kubelet(self, pod: dict[str, Any]) -> None:
        behaviour = self.pods.get(pod["metadata"]["labels"].get("deployment_id", ""), READY)
        if behaviour == HELD or pod["status"].get("phase") != "Pending":
            return
        status = {
            READY: running_pod_status,
            NEVER_READY: never_ready_pod_status,
            CRASHING: crashing_pod_status,
        }[behaviour]()
        await self.cluster.patch_status(PODS, pod["metadata"]["name"], status)

    def _status(
        self, deployment: dict[str, Any], replica_set: dict[str, Any], created: bool
    ) -> dict[str, Any]:
        name = deployment["metadata"]["name"]
        pods = self.cluster.pods_of(deployment)
        pod_hash = replica_set["metadata"]["labels"][HASH_LABEL]
        updated = [p for p in pods if p["metadata"]["labels"].get(HASH_LABEL) == pod_hash]
        ready = sum(1 for pod in pods if is_ready(pod))
        counts = {
            "replicas": len(pods),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        condition = self._progressing(deployment, replica_set, created, counts)
        wanted = deployment["spec"]["replicas"]
        available = {
            "type": "Available",
            "status": "True" if ready >= wanted else "False",
            "reason": "MinimumReplicasAvailable"
            if ready >= wanted
            else "MinimumReplicasUnavailable",
        }
        self._moved.setdefault(name, time.monotonic())
        return {
            "observedGeneration": deployment["metadata"]["generation"],
            **counts,
            "conditions": [available, condition],
        }

    def _progressing(
        self,
        deployment: dict[str, Any],
        replica_set: dict[str, Any],
        created: bool,
        counts: dict[str, int],
    ) -> dict[str, Any]:
        name, old = deployment["metadata"]["name"], deployment.get("status") or {}
        current = next((c for c in old.get("conditions") or [] if c["type"] == "Progressing"), None)
        if created:
            self._moved[name] = time.monotonic()
            return progressing(True, "NewReplicaSetCreated", replica_set, prefix="Created new")
        if current is None:
            self._moved[name] = time.monotonic()
            return progressing(True, "FoundNewReplicaSet", replica_set, prefix="Found new")
        wanted = deployment["spec"]["replicas"]
        if counts["replicas"] == counts["updatedReplicas"] and current["reason"] == (
            "NewReplicaSetAvailable"
        ):
            return current  # a finished rollout: no estimate of progress (even a stale one)
        complete = (
            counts["updatedReplicas"] == wanted == counts["replicas"]
            and counts["availableReplicas"] >= wanted
        )
        if complete:
            return progressing(
                True, "NewReplicaSetAvailable", replica_set, "has successfully progressed"
            )
        if current["reason"] == "ProgressDeadlineExceeded":
            return current  # kept, whichever ReplicaSet it names, until the rollout completes
        if any(counts[key] > old.get(key, 0) for key in ("updatedReplicas", "readyReplicas")):
            self._moved[name] = time.monotonic()
            return progressing(True, "ReplicaSetUpdated", replica_set, "is progressing")
        if time.monotonic() - self._moved.get(name, time.monotonic()) > self.deadline_secs:
            return progressing(
                False, "ProgressDeadlineExceeded", replica_set, "has timed out progressing"
            )
        return current


def progressing(
    status: bool, reason: str, replica_set: dict[str, Any], said: str = "", *, prefix: str = ""
) -> dict[str, Any]:
    name = replica_set["metadata"]["name"]
    message = f'{prefix} replica set "{name}"' if prefix else f'ReplicaSet "{name}" {said}.'
    return {
        "type": "Progressing",
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastUpdateTime": now_rfc3339(),
        "lastTransitionTime": now_rfc3339(),
    }


def rollout_status(
    deployment: dict[str, Any], *, available: int, replica_set: dict[str, Any]
) -> dict[str, Any]:
    replicas = deployment["spec"]["replicas"]
    return {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": available,
        "availableReplicas": available,
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "MinimumReplicasAvailable",
            },
            progressing(True, "NewReplicaSetAvailable", replica_set, "has successfully progressed"),
        ],
    }


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def init_pod_status() -> dict[str, Any]:
    """A new pod: scheduled, its ``fetch`` init container running."""
    return {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        ],
        "initContainerStatuses": [
            {"name": "fetch", "ready": False, "restartCount": 0, "state": {"running": {}}}
        ],
        "containerStatuses": [
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}},
            }
        ],
    }


def running_pod_status() -> dict[str, Any]:
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "initContainerStatuses": [
            {
                "name": "fetch",
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }
        ],
        "containerStatuses": [
            {
                "name": "app",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now_rfc3339()}},
            }
        ],
    }


def never_ready_pod_status() -> dict[str, Any]:
    """Running, but the readiness probe never passes (the app listens on the wrong port)."""
    status = running_pod_status()
    status["conditions"] = [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]
    status["containerStatuses"][0]["ready"] = False
    return status


def crashing_pod_status() -> dict[str, Any]:
    status = never_ready_pod_status()
    status["containerStatuses"][0].update(
        restartCount=3,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"exitCode": 1, "message": "Error: connect ECONNREFUSED"}},
    )
    return status


def assert_valid_manifests(manifests: Iterable[dict[str, Any]]) -> int:
    """Strict validation for the oldest and newest Kubernetes we support; returns the count."""
    import kubernetes_validate

    count = 0
    for manifest in manifests:
        for version in SUPPORTED_KUBERNETES:
            kubernetes_validate.validate(manifest, version, strict=True)
        count += 1
    return count

"""The Deployment controller and the kubelet for tests, over the API's HTTP interface.

:class:`Cluster` takes one step at a time, as a test asks: finish a rollout, time one out,
create a pod, write what the controller writes right after a spec change. ReplicaSets are
named ``<deployment>-<pod-template-hash>`` and owned by their Deployment, and conditions name
them, as the real controller's do. :class:`plugins.kube_controller.Controller` takes these
steps on its own.
"""

from __future__ import annotations

import copy
import hashlib
import json
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
            # pods are named after the template's deployment (a scale keeps it)
            revision = live["spec"]["template"]["metadata"]["labels"]["deployment_id"][:8]
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

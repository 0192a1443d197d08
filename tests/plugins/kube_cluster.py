"""The Deployment controller and the kubelet for tests, over the API's HTTP interface.

:class:`Cluster` creates pods for a Deployment's template and patches Deployment and Pod
status, as they would; ``assert_valid_manifests`` checks manifests against the real schemas.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from plugins.kube_api import DEPLOYMENTS, NAMESPACE, PODS, KubeAPI, now_rfc3339

# kubernetes-validate ships schemas for this range; manifests must be valid at both ends.
SUPPORTED_KUBERNETES = ("1.25.0", "1.37.0")


class Cluster:
    """The controller and kubelet for tests: pods and status, written over HTTP."""

    def __init__(self, api: KubeAPI) -> None:
        self.api = api

    async def _send(
        self, method: str, path: str, body: dict[str, Any], content_type: str
    ) -> dict[str, Any]:
        async with self.api.request(
            method, path, json=body, headers={"Content-Type": content_type}
        ) as resp:
            answer = await resp.json(content_type=None)
            assert resp.status < 400, answer
            return answer

    async def patch(
        self, resource: str, name: str, changes: dict[str, Any], subresource: str = ""
    ) -> dict[str, Any]:
        """A merge patch, like ``kubectl patch --type merge`` (or a controller's status write)."""
        group_version, plural = resource.rsplit("/", 1)
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        path = f"{prefix}/namespaces/{NAMESPACE}/{plural}/{name}"
        if subresource:
            path += f"/{subresource}"
        return await self._send("PATCH", path, changes, "application/merge-patch+json")

    async def patch_status(
        self, resource: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.patch(resource, name, {"status": status}, "status")

    async def create_pod(
        self, deployment: str, suffix: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """A pod of the Deployment's current template, with the given status."""
        live = self.api.live(DEPLOYMENTS, deployment)
        assert live is not None, f"no Deployment {deployment}"
        template = live["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{deployment}-{suffix}",
                "namespace": NAMESPACE,
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": template["spec"],
        }
        await self._send("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod, "application/json")
        return await self.patch_status(PODS, pod["metadata"]["name"], status)

    async def finish_rollout(self, deployment: str, *, pods: bool = True) -> None:
        """What a healthy rollout looks like: running pods, every replica updated and available."""
        live = self.api.live(DEPLOYMENTS, deployment)
        assert live is not None
        replicas = live["spec"]["replicas"]
        if pods:
            revision = live["metadata"]["labels"]["deployment_id"][:8]
            for index in range(replicas):
                await self.create_pod(deployment, f"{revision}-{index}", running_pod_status())
        await self.patch_status(DEPLOYMENTS, deployment, rollout_status(live, available=replicas))

    async def deadline_exceeded(self, deployment: str) -> None:
        live = self.api.live(DEPLOYMENTS, deployment)
        assert live is not None
        status = rollout_status(live, available=0)
        status["conditions"] = [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{deployment}-abc" has timed out progressing.',
            }
        ]
        await self.patch_status(DEPLOYMENTS, deployment, status)


def rollout_status(deployment: dict[str, Any], *, available: int) -> dict[str, Any]:
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
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
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


def assert_valid_manifests(manifests: Iterable[dict[str, Any]]) -> int:
    """Strict validation for the oldest and newest Kubernetes we support; returns the count."""
    import kubernetes_validate

    count = 0
    for manifest in manifests:
        for version in SUPPORTED_KUBERNETES:
            kubernetes_validate.validate(manifest, version, strict=True)
        count += 1
    return count

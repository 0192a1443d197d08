"""The Deployment controller and the kubelet, reacting on their own the way the real ones do
(``kube-controller-manager``'s deployment controller, as of Kubernetes 1.36):

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
import time
import uuid
from typing import Any

from plugins.kube_api import DEPLOYMENTS, PODS, KubeAPI
from plugins.kube_cluster import (
    CRASHING,
    HASH_LABEL,
    HELD,
    NEVER_READY,
    READY,
    Cluster,
    Refused,
    crashing_pod_status,
    init_pod_status,
    is_ready,
    never_ready_pod_status,
    progressing,
    running_pod_status,
)

__all__ = ["CRASHING", "HELD", "NEVER_READY", "READY", "Controller"]


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

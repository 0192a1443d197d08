"""The test controller plays the real Deployment controller's part in the failed-upgrade story:
if it stopped doing so, the upgrade tests would pass for the wrong reason."""

from __future__ import annotations

import copy
from typing import Any

from plugins.kube_api import DEPLOYMENTS, KubeAPI, wait_until
from plugins.kube_controller import HELD, NEVER_READY, Controller

TEMPLATE = {
    "metadata": {"labels": {"app": "aether", "app_name": "hello", "deployment_id": "v1"}},
    "spec": {"containers": [{"name": "app", "image": "node"}]},
}


def progressing(api: KubeAPI) -> dict[str, Any] | None:
    live = api.live(DEPLOYMENTS, "hello") or {}
    conditions = (live.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Progressing"), None)


def observed(api: KubeAPI) -> bool:
    live = api.live(DEPLOYMENTS, "hello") or {}
    return (live.get("status") or {}).get("observedGeneration") == live["metadata"]["generation"]


async def set_template(controller: Controller, deployment_id: str) -> None:
    template = copy.deepcopy(TEMPLATE)
    template["metadata"]["labels"]["deployment_id"] = deployment_id
    await controller.cluster.patch(DEPLOYMENTS, "hello", {"spec": {"template": template}})


async def test_a_restored_template_keeps_the_failed_releases_deadline_until_available(
    kube_api: KubeAPI, controller: Controller
) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "labels": {"app_name": "hello"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "aether", "app_name": "hello"}},
            "template": TEMPLATE,
        },
    }
    await controller.cluster.create(DEPLOYMENTS, body)
    await wait_until(
        lambda: (c := progressing(kube_api)) and c["reason"] == "NewReplicaSetAvailable",
        what="v1 available",
    )
    v1_set = progressing(kube_api)["message"]

    controller.pods["v2"] = NEVER_READY
    await set_template(controller, "v2")
    await wait_until(
        lambda: (c := progressing(kube_api)) and c["reason"] == "ProgressDeadlineExceeded",
        what="v2 timed out",
    )
    deadline = progressing(kube_api)
    controller.pods["v1"] = HELD
    await set_template(controller, "v1")
    await wait_until(lambda: observed(kube_api), what="the restore observed")

    assert progressing(kube_api) == deadline  # stale: it names v2's ReplicaSet
    assert deadline["message"].split('"')[1] not in v1_set
    controller.pods["v1"] = "ready"
    await wait_until(
        lambda: (c := progressing(kube_api)) and c["reason"] == "NewReplicaSetAvailable",
        what="v1 available again",
    )
    assert progressing(kube_api)["message"] == v1_set  # the same ReplicaSet as before

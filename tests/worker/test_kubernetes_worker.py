"""The worker's loop driving the Kubernetes runtime: database rows in, cluster objects out
(both metadata backends; a Kubernetes API on loopback)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from worker_support import deployment, insert_app, phases, stage_deployment, worker_settings

from aether.store.database import Database
from aether.store.tokens import authenticate
from aether.worker.loop import Worker
from aether.worker.runtimes.kubernetes import KubernetesRuntime
from plugins.kube_api import DEPLOYMENTS, KubeAPI, wait_until
from plugins.kube_cluster import Cluster


def kube_environ(kube_api: KubeAPI) -> dict[str, str]:
    """The runtime's environment: the loopback API's kubeconfig and a fast status poll."""
    return {"KUBECONFIG": str(kube_api.kubeconfig), "AETHER_KUBE_POLL_SECS": "0.02"}


def kube_worker(
    database: Database,
    kube_api: KubeAPI,
    tmp_path: Path,
    *,
    public_url: str = "http://aether",
    holder: str | None = None,
) -> Worker:
    """A worker with its own Kubernetes runtime, against the loopback API server."""
    settings = worker_settings(tmp_path / "data")
    runtime = KubernetesRuntime.from_env(settings, kube_environ(kube_api))
    return Worker(database, runtime, settings, public_url=public_url, holder=holder)


async def test_a_pending_deployment_becomes_a_running_kubernetes_deployment(
    database: Database, kube_api: KubeAPI, cluster: Cluster, tmp_path: Path
) -> None:
    worker = kube_worker(database, kube_api, tmp_path, public_url="http://aether.aether-system.svc")
    runtime = worker.runtime
    app = await insert_app(database, "hello")
    deployment_id = await stage_deployment(database, tmp_path / "data", app, staged=False)

    passing = asyncio.create_task(worker.run_once(wait=True))
    await wait_until(lambda: kube_api.live(DEPLOYMENTS, "hello"), what="the Deployment")
    await cluster.finish_rollout("hello")
    await asyncio.wait_for(passing, 20)

    row = await deployment(database, deployment_id)
    assert row["status"] == "running"
    assert row["endpoint"] == "http://hello.aether.svc.cluster.local"
    assert {"applying", "healthy", "running"} <= set(await phases(database, deployment_id))
    live = kube_api.live(DEPLOYMENTS, "hello")
    assert live["metadata"]["labels"]["deployment_id"] == deployment_id
    fetch = live["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert fetch[fetch.index("--api") + 1] == "http://aether.aether-system.svc"
    # The Secret holds a working pull token scoped to this deployment.
    secret = kube_api.live("v1/secrets", f"hello-pull-{deployment_id}")
    token = base64.b64decode(secret["data"]["token"]).decode()
    principal = await authenticate(database, token)
    assert principal is not None and principal["deployment_id"] == deployment_id
    await runtime.stop()


async def test_a_worker_losing_the_lease_leaves_the_cluster_objects_to_the_new_holder(
    database: Database, kube_api: KubeAPI, cluster: Cluster, tmp_path: Path
) -> None:
    worker = kube_worker(database, kube_api, tmp_path, holder="worker-a")
    runtime = worker.runtime
    app = await insert_app(database, "hello")
    await stage_deployment(database, tmp_path / "data", app, staged=False)
    passing = asyncio.create_task(worker.run_once(wait=True))
    await wait_until(lambda: kube_api.live(DEPLOYMENTS, "hello"), what="the Deployment")
    await cluster.finish_rollout("hello")
    await asyncio.wait_for(passing, 20)
    # Worker A's renewals stalled; worker B took the app over.
    await database.execute(
        "UPDATE app_leases SET holder = 'worker-b', expires_at = '9999-01-01T00:00:00Z'"
        " WHERE app_id = :id",
        {"id": app["id"]},
    )

    held = await worker._hold(app["id"], worker._slots[app["id"]])

    assert held is False
    assert kube_api.live(DEPLOYMENTS, "hello") is not None
    await runtime.stop()


async def test_objects_of_an_app_deleted_while_no_worker_ran_are_removed(
    database: Database, kube_api: KubeAPI, cluster: Cluster, tmp_path: Path
) -> None:
    worker = kube_worker(database, kube_api, tmp_path, holder="worker-a")
    gone = await insert_app(database, "gone")
    kept = await insert_app(database, "kept")
    for app in (gone, kept):
        await stage_deployment(database, tmp_path / "data", app, staged=False)
    passing = asyncio.create_task(worker.run_once(wait=True))
    for name in ("gone", "kept"):
        await wait_until(lambda n=name: kube_api.live(DEPLOYMENTS, n), what=f"{name}'s Deployment")
        await cluster.finish_rollout(name)
    await asyncio.wait_for(passing, 20)
    await worker.runtime.stop()
    # The app is deleted while no worker runs: nobody holds it to stop it.
    await database.execute("DELETE FROM applications WHERE id = :id", {"id": gone["id"]})

    second = kube_worker(database, kube_api, tmp_path)
    await second.run_once(wait=True)

    assert kube_api.live(DEPLOYMENTS, "gone") is None
    assert kube_api.live(DEPLOYMENTS, "kept") is not None
    await second.runtime.stop()

"""`aether ps` on Kubernetes: the worker records the app's pods (state, readiness, restarts)
as its instances, from the loopback API server's pods."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_kubernetes_upgrades import make_worker, running_app, settle, upgrade

from aether.store import instances
from aether.store.database import Database
from aether.worker.loop import Worker
from plugins.kube_api import KubeAPI
from plugins.kube_controller import CRASHING, Controller


@pytest.fixture
async def worker(database: Database, kube_api: KubeAPI, tmp_path: Path) -> AsyncIterator[Worker]:
    w = make_worker(database, kube_api, tmp_path)
    yield w
    await w.runtime.stop()


async def test_pods_are_recorded_as_instances(
    worker: Worker, database: Database, kube_api: KubeAPI, controller: Controller
) -> None:
    app, first = await running_app(database, worker)
    await worker.run_once(wait=True)
    rows = await instances.of_app(database, app["id"])
    pods = {p["metadata"]["name"] for p in kube_api.all_live("v1/pods")}
    assert {r["id"] for r in rows} == pods and rows
    assert {(r["deployment_id"], r["state"], r["health"]) for r in rows} == {
        (first, "running", "healthy")
    }
    assert all(r["worker"] == worker.holder and r["endpoint"] is None for r in rows)

    second = await upgrade(database, worker, controller, app, CRASHING)

    async def crashing_recorded() -> bool:
        now = await instances.of_app(database, app["id"])
        return any(
            r["deployment_id"] == second and r["state"] == "restarting" and r["restarts"] >= 3
            for r in now
        )

    await settle(worker, crashing_recorded)

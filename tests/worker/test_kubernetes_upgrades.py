"""Failed upgrades on Kubernetes: the worker's loop against a Kubernetes API on loopback whose
Deployment controller behaves like the real one (``plugins.kube_cluster.Controller``: status
after every spec change, conditions naming ReplicaSets, a stale ProgressDeadlineExceeded kept
after a restore, status writes racing ours). Whatever fails, the last release that worked
ends up serving and no object of the app is deleted (both metadata backends)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from test_kubernetes_worker import kube_environ
from worker_support import (
    deployment,
    eventually,
    insert_app,
    phases,
    stage_deployment,
    worker_settings,
)

from aether.store.database import Database
from aether.worker.loop import Worker
from aether.worker.runtimes.kubernetes import KubernetesRuntime
from plugins.kube_api import DEPLOYMENTS, KubeAPI
from plugins.kube_controller import CRASHING, HELD, NEVER_READY, READY, Controller


def make_worker(database: Database, kube_api: KubeAPI, tmp_path: Path, **settings: Any) -> Worker:
    ws = worker_settings(tmp_path / "data", **settings)
    runtime = KubernetesRuntime.from_env(ws, kube_environ(kube_api))
    return Worker(database, runtime, ws, public_url="http://aether")


@pytest.fixture
async def worker(database: Database, kube_api: KubeAPI, tmp_path: Path) -> AsyncIterator[Worker]:
    w = make_worker(database, kube_api, tmp_path)
    yield w
    await w.runtime.stop()


async def settle(worker: Worker, done: Callable[[], Any], *, timeout: float = 30.0) -> None:
    """Run passes (as the loop does) until ``done()`` holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not await done():
        if time.monotonic() > deadline:
            raise AssertionError("the worker did not get there in time")
        await worker.run_once(wait=True)
        await asyncio.sleep(0.02)


def status_is(database: Database, deployment_id: str, wanted: str) -> Callable[[], Any]:
    async def check() -> bool:
        return (await deployment(database, deployment_id))["status"] == wanted

    return check


def served(worker: Worker, deployment_id: str) -> Callable[[], Any]:
    async def check() -> bool:
        observed = await worker.runtime.observe("hello")
        return observed is not None and observed.deployment_id == deployment_id and observed.healthy

    return check


async def running_app(database: Database, worker: Worker) -> tuple[dict[str, Any], str]:
    """``hello`` with its first release (v1) running."""
    app = await insert_app(database, "hello")
    first = await stage_deployment(database, worker.settings.data_dir, app, staged=False)
    await settle(worker, served(worker, first))
    await settle(worker, status_is(database, first, "running"))
    return app, first


async def upgrade(
    database: Database, worker: Worker, controller: Controller, app: dict[str, Any], pods: str
) -> str:
    """Stage a release whose pods behave as ``pods`` and run the pass that rolls it out."""
    release = await stage_deployment(database, worker.settings.data_dir, app, staged=False)
    controller.pods[release] = pods
    await worker.run_once(wait=True)
    return release


def assert_in_place(kube_api: KubeAPI, release: str) -> None:
    """The app's objects exist, carry ``release``, and none was ever deleted."""
    live = kube_api.live(DEPLOYMENTS, "hello")
    assert live is not None and live["metadata"]["labels"]["deployment_id"] == release
    assert kube_api.live("v1/services", "hello") is not None
    assert kube_api.live("v1/secrets", f"hello-pull-{release}") is not None
    assert kube_api.writes("DELETE", "deployments") == []
    assert kube_api.writes("DELETE", "services") == []


async def failure_of(database: Database, deployment_id: str) -> str:
    row = await deployment(database, deployment_id)
    assert row["status"] == "failed"
    return str(row["failure_reason"])


async def test_v2_never_ready_fails_and_v1_is_restored_with_nothing_deleted(
    worker: Worker, database: Database, kube_api: KubeAPI, controller: Controller
) -> None:
    app, first = await running_app(database, worker)

    second = await upgrade(database, worker, controller, app, NEVER_READY)
    reason = await failure_of(database, second)
    await settle(worker, served(worker, first))

    assert "no progress before its deadline" in reason and "has timed out progressing" in reason
    assert (await deployment(database, first))["status"] == "running"
    assert "failed" not in await phases(database, first)  # the stale condition fooled nobody
    restoring = await database.fetch_value(
        "SELECT message FROM deployment_events WHERE deployment_id = :id AND phase = 'restoring'",
        {"id": first},
    )
    assert restoring == f"deployment {second} failed"
    assert_in_place(kube_api, first)
    # Only the failed release's pull token went, once the restored release was available.
    deleted = {r.name for r in kube_api.writes("DELETE", "secrets")}
    assert deleted == {f"hello-pull-{second}"}
    await worker.run_once(wait=True)  # converged: nothing more happens
    assert (await phases(database, first)).count("restoring") == 1


async def test_a_conflict_on_restore_is_read_again_and_retried(
    worker: Worker, database: Database, kube_api: KubeAPI, controller: Controller
) -> None:
    app, first = await running_app(database, worker)
    second = await upgrade(database, worker, controller, app, NEVER_READY)
    await failure_of(database, second)
    before = len(kube_api.writes("PUT", "deployments", "hello"))
    controller.interfere("hello", times=2)  # status writes land between our reads and writes

    await settle(worker, served(worker, first))

    assert len(kube_api.writes("PUT", "deployments", "hello")) - before == 3
    assert (await deployment(database, first))["status"] == "running"
    assert_in_place(kube_api, first)


async def test_conflicts_past_the_retries_never_give_up_on_a_restore(
    database: Database, kube_api: KubeAPI, controller: Controller, tmp_path: Path
) -> None:
    # A rollout timeout far shorter than the retries take: a restart is not bound by it.
    worker = make_worker(database, kube_api, tmp_path, AETHER_ROLLOUT_TIMEOUT_SECS=1)
    # The runtime's own wait for available pods keeps its default: a loaded machine's
    # controller may take more than 1 s to make them so, which is not what is tested here.
    assert isinstance(worker.runtime, KubernetesRuntime)
    worker.runtime.rollout_timeout_secs = worker_settings(tmp_path).rollout_timeout_secs
    try:
        app, first = await running_app(database, worker)
        second = await upgrade(database, worker, controller, app, NEVER_READY)
        await failure_of(database, second)
        controller.interfere("hello", times=6)  # one more than a pass retries

        await settle(worker, served(worker, first))

        assert (await deployment(database, first))["status"] == "running"
        assert "retrying" in await phases(database, first)
        assert_in_place(kube_api, first)
    finally:
        await worker.runtime.stop()


async def test_a_failed_first_deploy_deletes_nothing_that_existed_before(
    worker: Worker, database: Database, kube_api: KubeAPI, controller: Controller
) -> None:
    other = await insert_app(database, "other")
    other_release = await stage_deployment(database, worker.settings.data_dir, other, staged=False)
    await settle(worker, status_is(database, other_release, "running"))
    app = await insert_app(database, "hello")

    first = await upgrade(database, worker, controller, app, NEVER_READY)
    await failure_of(database, first)
    await worker.run_once(wait=True)

    assert kube_api.live(DEPLOYMENTS, "hello") is None  # what the attempt created is gone
    assert kube_api.live(DEPLOYMENTS, "other") is not None
    assert kube_api.live("v1/services", "other") is not None
    assert kube_api.live("v1/secrets", f"other-pull-{other_release}") is not None
    assert {r.name for r in kube_api.writes("DELETE", "deployments")} == {"hello"}


async def test_a_restore_whose_pods_crash_now_keeps_the_workload_and_says_so(
    worker: Worker, database: Database, kube_api: KubeAPI, controller: Controller
) -> None:
    app, first = await running_app(database, worker)
    controller.pods[first] = CRASHING  # whatever v1 depends on went away meanwhile
    second = await upgrade(database, worker, controller, app, NEVER_READY)
    await failure_of(database, second)

    await settle(worker, status_is(database, first, "failed"))
    await worker.run_once(wait=True)
    await worker.run_once(wait=True)

    assert "keeps crashing" in await failure_of(database, first)
    assert (await phases(database, second)).count("kept") == 1
    assert_in_place(kube_api, first)  # Kubernetes keeps restarting v1's pods


async def test_a_worker_restarted_mid_restore_finishes_it(
    database: Database, kube_api: KubeAPI, controller: Controller, tmp_path: Path
) -> None:
    crashed = make_worker(database, kube_api, tmp_path)
    app, first = await running_app(database, crashed)
    controller.pods[first] = HELD  # v1's new pods wait in their init container
    second = await upgrade(database, crashed, controller, app, NEVER_READY)
    await failure_of(database, second)
    restoring = asyncio.create_task(crashed.run_once(wait=True))
    await settle_on(lambda: held_pods_of(kube_api, first))
    # The worker dies mid-restore: its tasks end, its lease is left to expire.
    await cancel_worker(crashed, restoring)
    await database.execute("UPDATE app_leases SET expires_at = '2000-01-01T00:00:00Z'")

    heir = make_worker(database, kube_api, tmp_path)
    try:
        resumed = asyncio.create_task(heir.run_once(wait=True))

        async def restoring_again() -> bool:
            return (await phases(database, first)).count("restoring") == 2

        await eventually(restoring_again)  # the new worker picked the restore up
        controller.pods[first] = READY
        await asyncio.wait_for(resumed, 30)
        await settle(heir, served(heir, first))
    finally:
        await heir.runtime.stop()

    assert (await deployment(database, first))["status"] == "running"
    assert (await phases(database, first)).count("restoring") == 2
    assert_in_place(kube_api, first)


async def test_two_failures_in_a_row_end_with_the_first_release_serving(
    worker: Worker, database: Database, kube_api: KubeAPI, controller: Controller
) -> None:
    app, first = await running_app(database, worker)
    failed = []
    for _ in range(2):
        release = await upgrade(database, worker, controller, app, NEVER_READY)
        await failure_of(database, release)
        await settle(worker, served(worker, first))
        failed.append(release)

    assert (await deployment(database, first))["status"] == "running"
    assert "failed" not in await phases(database, first)
    assert_in_place(kube_api, first)
    assert {r.name for r in kube_api.writes("DELETE", "secrets")} == {
        f"hello-pull-{release}" for release in failed
    }


# --- helpers for the mid-restore crash ------------------------------------------------------


def held_pods_of(kube_api: KubeAPI, release: str) -> bool:
    live = kube_api.live(DEPLOYMENTS, "hello")
    pods = [
        pod
        for pod in kube_api.all_live("v1/pods")
        if pod["metadata"]["labels"].get("deployment_id") == release
    ]
    return bool(live and live["metadata"]["labels"]["deployment_id"] == release and pods)


async def settle_on(check: Callable[[], Any], *, timeout: float = 20.0) -> None:
    await eventually(check, timeout=timeout, interval=0.01)


async def cancel_worker(worker: Worker, passing: asyncio.Task[None]) -> None:
    tasks = [slot.task for slot in worker._slots.values() if slot.task is not None]
    for task in [*tasks, passing]:
        task.cancel()
    await asyncio.gather(*tasks, passing, return_exceptions=True)
    await worker.runtime.stop()

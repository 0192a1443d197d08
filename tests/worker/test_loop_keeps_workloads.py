"""A failed upgrade never removes the running app: the loop on real node processes (both
metadata backends). The Kubernetes side of the same rules is in test_kubernetes_upgrades.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_loop import make_worker
from worker_support import deployment, get_json, insert_app, phases, stage_deployment

from aether.store.database import Database
from aether.store.leases import release_leases
from aether.worker.loop import Worker


@pytest.fixture
async def worker(database: Database, tmp_path: Path):
    w = make_worker(database, tmp_path / "data")
    yield w
    await w.runtime.stop()


async def serves(worker: Worker, deployment_id: str) -> bool:
    observed = await worker.runtime.observe("hello")
    if observed is None or observed.deployment_id != deployment_id:
        return False
    status, body = await get_json(observed.endpoint)
    return status == 200 and body["deployment_id"] == deployment_id


async def test_every_release_failed_leaves_the_running_process_alone_and_says_so(
    worker: Worker, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    app = await insert_app(database, "hello")
    first = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    process = worker.runtime.process_of("hello")  # type: ignore[attr-defined]
    # The history an older worker wrote: the running release marked failed by a stale status.
    await database.execute(
        "UPDATE deployments SET status = 'failed', failure_reason = 'stale' WHERE id = :id",
        {"id": first},
    )

    with caplog.at_level(logging.WARNING, logger="aether.worker"):
        await worker.run_once(wait=True)
        await worker.run_once(wait=True)

    assert process is not None and process.alive
    assert await serves(worker, first)
    assert (worker.settings.data_dir / "apps" / "hello" / first).is_dir()
    assert (await phases(database, first)).count("kept") == 1  # said once, not every pass
    kept = await database.fetch_value(
        "SELECT message FROM deployment_events WHERE deployment_id = :id AND phase = 'kept'",
        {"id": first},
    )
    assert f"release {first}" in kept and "left as it is" in kept
    assert sum("every release of hello failed" in r.getMessage() for r in caplog.records) == 1


async def test_two_failures_in_a_row_leave_the_first_release_serving(
    worker: Worker, database: Database
) -> None:
    app = await insert_app(database, "hello")
    good = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    broken = []
    for _ in range(2):
        bad = await stage_deployment(
            database, worker.settings.data_dir, app, env={"CRASH_AT_BOOT": "1"}
        )
        await worker.run_once(wait=True)
        broken.append(bad)

    for bad in broken:
        assert (await deployment(database, bad))["status"] == "failed"
    assert (await deployment(database, good))["status"] == "running"
    assert await serves(worker, good)
    assert (await phases(database, good)).count("starting") == 1  # never interrupted


async def test_a_worker_restarted_after_a_failed_upgrade_restores_the_previous_release(
    database: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first_worker = make_worker(database, data_dir)
    app = await insert_app(database, "hello")
    good = await stage_deployment(database, data_dir, app)
    await first_worker.run_once(wait=True)
    bad = await stage_deployment(database, data_dir, app, env={"CRASH_AT_BOOT": "1"})
    await first_worker.run_once(wait=True)
    await first_worker.runtime.stop()  # its processes end with it
    await release_leases(database, first_worker.holder)

    second = make_worker(database, data_dir)
    try:
        await second.run_once(wait=True)
        assert await serves(second, good)
    finally:
        await second.runtime.stop()
    assert (await deployment(database, good))["status"] == "running"
    assert (await deployment(database, bad))["status"] == "failed"
    restoring = await database.fetch_value(
        "SELECT message FROM deployment_events WHERE deployment_id = :id AND phase = 'restoring'",
        {"id": good},
    )
    assert restoring == f"deployment {bad} failed"

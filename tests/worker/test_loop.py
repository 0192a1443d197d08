"""The reconcile loop over both metadata backends and real node processes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from worker_support import (
    deployment,
    eventually,
    get_json,
    insert_app,
    phases,
    stage_deployment,
    worker_settings,
)

from aether.store.database import Database
from aether.worker.loop import Worker
from aether.worker.runtimes.local import LocalRuntime
from release_rows import TEST_RING, set_config


def make_worker(
    db: Database, data_dir: Path, *, holder: str | None = None, **settings: object
) -> Worker:
    ws = worker_settings(data_dir, **settings)
    runtime = LocalRuntime(ws, stop_grace_secs=2.0)
    return Worker(db, runtime, ws, holder=holder, keyring=TEST_RING)


async def finish(*workers: Worker) -> None:
    """Stop the workers and, since apps outlive them, their apps."""
    for w in workers:
        await w.runtime.stop_apps()  # type: ignore[attr-defined]
        await w.runtime.stop()


@pytest.fixture
async def worker(database: Database, tmp_path: Path):
    w = make_worker(database, tmp_path / "data")
    yield w
    await finish(w)


async def test_pending_deployment_runs_and_answers(worker: Worker, database: Database) -> None:
    app = await insert_app(database, "hello")
    dep_id = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    row = await deployment(database, dep_id)
    assert row["status"] == "running" and row["rollout_completed_at"]
    status, body = await get_json(row["endpoint"])
    assert status == 200 and body["deployment_id"] == dep_id
    assert await phases(database, dep_id) == [
        "pending",
        "deploying",
        "starting",
        "healthy",
        "running",
    ]
    await worker.run_once(wait=True)
    assert len(await phases(database, dep_id)) == 5  # converged: nothing more to do


async def test_redeploy_supersedes_the_previous(worker: Worker, database: Database) -> None:
    app = await insert_app(database, "hello")
    first = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    old_process = worker.runtime.process_of("hello")  # type: ignore[attr-defined]
    second = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    assert (await deployment(database, first))["status"] == "superseded"
    new = await deployment(database, second)
    assert new["status"] == "running"
    assert (await get_json(new["endpoint"]))[1]["deployment_id"] == second
    assert "superseded" in await phases(database, first)

    async def old_stopped() -> bool:  # it drains and stops in the background
        return not old_process.alive

    await eventually(old_stopped)


async def test_broken_release_fails_and_previous_keeps_serving(
    worker: Worker, database: Database
) -> None:
    app = await insert_app(database, "hello")
    good = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    bad = await stage_deployment(
        database, worker.settings.data_dir, app, env={"CRASH_AT_BOOT": "1"}
    )
    await worker.run_once(wait=True)
    failed = await deployment(database, bad)
    assert failed["status"] == "failed"
    assert "exited with code 3" in failed["failure_reason"]
    assert (await phases(database, bad))[-1] == "failed"
    running = await deployment(database, good)
    assert running["status"] == "running"
    assert (await get_json(running["endpoint"]))[1]["deployment_id"] == good
    await worker.run_once(wait=True)
    assert (await phases(database, good)).count("starting") == 1


async def test_config_vars_and_one_off_values_reach_the_app(
    worker: Worker, database: Database
) -> None:
    app = await insert_app(database, "configured")
    await set_config(database, app["id"], {"APP_VERSION": "from-config", "DATABASE_URL": "x://y"})
    first = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    running = await deployment(database, first)
    assert (await get_json(running["endpoint"]))[1]["version"] == "from-config"
    second = await stage_deployment(
        database, worker.settings.data_dir, app, env={"APP_VERSION": "one-off"}
    )
    await worker.run_once(wait=True)
    assert (await get_json((await deployment(database, second))["endpoint"]))[1]["version"] == (
        "one-off"
    )


async def test_a_config_value_the_app_prints_is_masked_in_events(
    worker: Worker, database: Database
) -> None:
    app = await insert_app(database, "leaky")
    await set_config(database, app["id"], {"APP_VERSION": "s3cret-in-output", "CRASH_AT_BOOT": "1"})
    bad = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    failed = await deployment(database, bad)
    assert failed["status"] == "failed" and "exited with code 3" in failed["failure_reason"]
    assert "[config value]" in failed["failure_reason"]
    rows = await database.fetch_all(
        "SELECT message FROM deployment_events WHERE deployment_id = :id", {"id": bad}
    )
    assert all("s3cret-in-output" not in row["message"] for row in rows)
    assert "s3cret-in-output" not in failed["failure_reason"]


async def test_missing_artifact_fails_the_rollout(worker: Worker, database: Database) -> None:
    from aether.blobs import open_blob_store
    from aether.settings import BlobSettings

    blobs = open_blob_store(
        BlobSettings.from_env({"AETHER_DATA_DIR": str(worker.settings.data_dir)}),
        public_url="http://127.0.0.1:1",
    )
    await blobs.open()
    worker.runtime.use_blob_store(blobs)  # type: ignore[attr-defined]
    try:
        app = await insert_app(database, "ghost")
        dep_id = await stage_deployment(database, worker.settings.data_dir, app, staged=False)
        await worker.run_once(wait=True)
        row = await deployment(database, dep_id)
        assert row["status"] == "failed"
        assert "cannot download the artifact" in row["failure_reason"]
    finally:
        await blobs.close()


async def test_a_restarted_worker_adopts_the_running_app(
    database: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = make_worker(database, data_dir)
    app = await insert_app(database, "hello")
    dep_id = await stage_deployment(database, data_dir, app)
    await first.run_once(wait=True)
    before = first.runtime.process_of("hello")  # type: ignore[attr-defined]
    await first.runtime.stop()  # the worker goes, the app stays
    second = make_worker(database, data_dir)
    try:
        assert second.holder == first.holder  # same host, same data dir: same identity
        await second.runtime.start()
        await second.run_once(wait=True)
        row = await deployment(database, dep_id)
        assert (await get_json(row["endpoint"]))[1]["deployment_id"] == dep_id
        adopted = second.runtime.process_of("hello")  # type: ignore[attr-defined]
        assert adopted.record.shim_pid == before.record.shim_pid
        assert adopted.record.app_pid == before.record.app_pid
        assert "restarting" not in await phases(database, dep_id)
        # The loop hands it the release the app runs: its next release has a standby.
        runtime = second.runtime
        assert isinstance(runtime, LocalRuntime)
        await eventually(lambda: runtime.standby_of("hello"), what="a standby")
        assert runtime.release_wanted("hello") is None
    finally:
        await finish(second)


async def test_a_new_worker_starts_stopped_apps_again(database: Database, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = make_worker(database, data_dir)
    app = await insert_app(database, "hello")
    dep_id = await stage_deployment(database, data_dir, app)
    await first.run_once(wait=True)
    await finish(first)  # `aether worker --stop-apps`
    second = make_worker(database, data_dir)
    try:
        await second.runtime.start()
        await second.run_once(wait=True)
        row = await deployment(database, dep_id)
        assert row["status"] == "running"
        assert (await get_json(row["endpoint"]))[1]["deployment_id"] == dep_id
        assert (await phases(database, dep_id)).count("restarting") == 1
    finally:
        await finish(second)


async def test_two_workers_handle_each_app_once(database: Database, tmp_path: Path) -> None:
    a = make_worker(database, tmp_path / "a")
    b = make_worker(database, tmp_path / "b")
    try:
        deployments = []
        for name in ("one", "two", "three"):
            app = await insert_app(database, name)
            dep_id = await stage_deployment(database, tmp_path / "a", app)
            shutil.copytree(tmp_path / "a/apps" / name, tmp_path / "b/apps" / name)
            deployments.append(dep_id)
        for _ in range(3):
            await asyncio.gather(a.run_once(wait=True), b.run_once(wait=True))
        for name in ("one", "two", "three"):
            served = [w for w in (a, b) if await w.runtime.observe(name) is not None]
            assert len(served) == 1, name
        for dep_id in deployments:
            assert (await deployment(database, dep_id))["status"] == "running"
            assert (await phases(database, dep_id)).count("starting") == 1
    finally:
        await finish(a, b)


async def test_expired_lease_of_a_dead_worker_is_taken_over(
    database: Database, tmp_path: Path
) -> None:
    dead = make_worker(database, tmp_path / "data", AETHER_WORKER_LEASE_SECS=0.5)
    app = await insert_app(database, "hello")
    dep_id = await stage_deployment(database, tmp_path / "data", app)
    await dead.run_once(wait=True)
    await finish(dead)  # its host died: its lease stays in the table until it expires
    heir = make_worker(database, tmp_path / "data", holder="heir", AETHER_WORKER_LEASE_SECS=0.5)
    try:

        async def taken_over() -> bool:
            await heir.run_once(wait=True)
            return await heir.runtime.observe("hello") is not None

        await eventually(taken_over, timeout=10)
        row = await deployment(database, dep_id)
        assert (await get_json(row["endpoint"]))[1]["deployment_id"] == dep_id
    finally:
        await finish(heir)


async def test_run_stops_on_the_stop_flag_and_leaves_the_app_running(
    database: Database, tmp_path: Path
) -> None:
    worker = make_worker(database, tmp_path / "data", AETHER_WORKER_POLL_SECS=0.05)
    task = asyncio.create_task(worker.run())
    app = await insert_app(database, "hello")
    dep_id = await stage_deployment(database, tmp_path / "data", app)

    async def running() -> bool:
        return (await deployment(database, dep_id))["status"] == "running"

    await eventually(running)
    process = worker.runtime.process_of("hello")  # type: ignore[attr-defined]
    worker.stop()
    await asyncio.wait_for(task, 20)
    try:  # the app goes on, and its lease stays with this worker's identity
        assert process.alive
        leases = await database.fetch_all("SELECT holder FROM app_leases")
        assert [row["holder"] for row in leases] == [worker.holder]
    finally:
        await finish(worker)


async def test_a_deployment_created_in_this_process_wakes_the_worker_at_once(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aether.store import wakeups
    from aether.worker import loop

    # Neither the poll nor the pending check can come in time: only the wake-up can.
    monkeypatch.setattr(loop, "PENDING_CHECK_SECS", 120.0)
    monkeypatch.setattr(loop, "PG_SAFETY_POLL_SECS", 120.0)
    worker = make_worker(database, tmp_path / "data", AETHER_WORKER_POLL_SECS=120)
    task = asyncio.create_task(worker.run())
    try:
        app = await insert_app(database, "hello")
        await worker.run_once(wait=True)
        dep_id = await stage_deployment(database, tmp_path / "data", app)
        wakeups.poke(wakeups.NEW_DEPLOYMENT)  # what store.create_deployment does after its insert

        async def running() -> bool:
            return (await deployment(database, dep_id))["status"] == "running"

        await eventually(running, timeout=30.0)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)
        await finish(worker)


@contextlib.asynccontextmanager
async def listening_worker(url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, Worker]]:
    """A running worker on a fresh PostgreSQL database with one settled app ("hello"), its
    LISTEN in effect and a safety poll (120 s) far beyond any deadline of the tests."""
    from aether.store import open_database
    from aether.store.migrate import migrate

    db = open_database(url, tmp_path)
    await db.open()
    await migrate(db)
    worker = make_worker(db, tmp_path / "data", AETHER_WORKER_POLL_SECS=120)
    task = asyncio.create_task(worker.run())
    try:
        await insert_app(db, "hello")
        await asyncio.wait_for(worker.listening.wait(), 10)
        await worker.run_once(wait=True)  # the app settled: only a NOTIFY can wake the loop now
        yield db, worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)
        await finish(worker)
        await db.close()


async def becomes_running(db: Database, tmp_path: Path) -> None:
    """Stage a deployment of "hello" and wait (well within the safety poll) until it runs."""
    (app,) = await db.fetch_all("SELECT * FROM applications WHERE name = 'hello'")
    dep_id = await stage_deployment(db, tmp_path / "data", app)

    async def running() -> bool:
        return (await deployment(db, dep_id))["status"] == "running"

    await eventually(running, timeout=30.0)


@pytest.mark.postgres
async def test_notify_wakes_the_worker_before_the_safety_poll(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    async with listening_worker(fresh_postgres_url, tmp_path) as (db, _worker):
        await becomes_running(db, tmp_path)


@pytest.mark.postgres
async def test_a_dropped_listen_reconnects_and_catches_up_on_what_it_missed(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    async with listening_worker(fresh_postgres_url, tmp_path) as (db, worker):
        await db.execute(  # what a database restart or a network cut does to the listener
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )

        async def deaf() -> bool:
            return not worker.listening.is_set()

        await eventually(deaf, timeout=10.0)
        await becomes_running(db, tmp_path)  # its NOTIFY is lost: the reconnect catches up
        assert worker.listening.is_set()


async def test_a_worker_that_lost_its_lease_stops_the_app(
    worker: Worker, database: Database
) -> None:
    from aether.store.clock import now_iso

    app = await insert_app(database, "hello")
    await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    assert await worker.runtime.observe("hello") is not None
    await database.execute(  # another worker took the app over while this one stalled
        "UPDATE app_leases SET holder = 'someone-else', expires_at = :later",
        {"later": now_iso(600)},
    )
    await worker.run_once(wait=True)
    assert await worker.runtime.observe("hello") is None


async def test_a_transient_fault_is_recorded_and_the_rollout_stays_open(
    worker: Worker, database: Database
) -> None:
    app = await insert_app(database, "patient")  # no blob store yet: Retry(delay=1.0)
    dep_id = await stage_deployment(database, worker.settings.data_dir, app, staged=False)
    await worker.run_once(wait=True)
    row = await deployment(database, dep_id)
    assert row["status"] == "deploying"
    assert (await phases(database, dep_id)).count("retrying") == 1


async def test_a_killed_supervisor_is_started_again(worker: Worker, database: Database) -> None:
    import os
    import signal

    app = await insert_app(database, "hello")
    dep_id = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    record = worker.runtime.process_of("hello").record  # type: ignore[attr-defined]
    os.kill(record.shim_pid, signal.SIGKILL)  # the supervisor, and with it the sandbox, die

    async def running_again() -> bool:
        await worker.run_once(wait=True)
        if "restarting" not in await phases(database, dep_id):
            return False
        row = await deployment(database, dep_id)
        return (await get_json(row["endpoint"]))[0] == 200

    await eventually(running_again, timeout=30)
    assert (await phases(database, dep_id)).count("restarting") == 1


async def test_an_adopted_app_another_worker_took_over_stops_here(
    database: Database, tmp_path: Path
) -> None:
    from aether.store.clock import now_iso

    data_dir = tmp_path / "data"
    first = make_worker(database, data_dir)
    app = await insert_app(database, "hello")
    await stage_deployment(database, data_dir, app)
    await first.run_once(wait=True)
    process = first.runtime.process_of("hello")  # type: ignore[attr-defined]
    await first.runtime.stop()
    await database.execute(  # while this worker was down, another one took the app over
        "UPDATE app_leases SET holder = 'someone-else', expires_at = :later",
        {"later": now_iso(600)},
    )
    second = make_worker(database, data_dir)
    try:
        await second.runtime.start()
        assert "hello" in second.runtime.adopted  # type: ignore[attr-defined]
        await second.run_once(wait=True)

        async def stopped() -> bool:
            return not process.supervisor_alive

        await eventually(stopped, timeout=30)
    finally:
        await finish(second)


async def test_the_worker_records_instances_and_a_restart_replaces_them(
    worker: Worker, database: Database
) -> None:
    from aether.store import instances, releases
    from aether.store.deployments import lock_app

    app = await insert_app(database, "hello")
    first = await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)
    rows = await instances.of_app(database, app["id"])
    assert [(r["deployment_id"], r["state"], r["health"]) for r in rows] == [
        (first, "running", "healthy")
    ]
    assert rows[0]["worker"] == worker.holder and rows[0]["release"] == 1
    assert rows[0]["endpoint"] == (await deployment(database, first))["endpoint"]
    async with database.transaction() as tx:
        await lock_app(tx, app["id"])
        outcome = await releases.restart(tx, app["id"], created_by=None)
    again = outcome.deployment["id"]
    shutil.copytree(
        worker.settings.data_dir / "apps" / "hello" / first,
        worker.settings.data_dir / "apps" / "hello" / again,
    )  # the release folder, as a fetch would leave it (the marker names the artifact)

    async def restarted() -> bool:
        await worker.run_once(wait=True)
        now = await instances.of_app(database, app["id"])
        return [r["deployment_id"] for r in now] == [again]

    await eventually(restarted, timeout=60)
    assert (await deployment(database, again))["status"] == "running"
    assert (await deployment(database, first))["status"] == "superseded"


async def test_a_scale_up_routes_to_every_new_instance_from_its_cutover(
    worker: Worker, database: Database
) -> None:
    """The moment a scale's deployment is running, the router's look-up names every
    instance it runs, not only the first (the instance rows go with the cutover)."""
    import json
    from dataclasses import replace

    from aether.store import releases, rollouts, wakeups
    from aether.store.deployments import lock_app
    from aether.store.releases import Proposal, ReleaseSpec

    app = await insert_app(database, "hello")
    await stage_deployment(database, worker.settings.data_dir, app)
    await worker.run_once(wait=True)

    async def make(tx: object, base: dict[str, object] | None) -> Proposal:
        assert base is not None
        spec = replace(ReleaseSpec.of(base), replicas=3)
        return Proposal(spec, "scale", "Scale to 3 replicas", json.loads(base["env"] or "{}"), None)  # type: ignore[arg-type]

    async with database.transaction() as tx:
        await lock_app(tx, app["id"])
        scaled = (await releases.propose(tx, app["id"], make)).deployment["id"]
    woke = asyncio.Event()

    async def endpoints_at_cutover() -> list[str]:
        while True:
            await woke.wait()
            woke.clear()
            if (await deployment(database, scaled))["status"] == "running":
                serving = await rollouts.serving_endpoints(database, "hello")
                assert serving is not None
                return list(serving["endpoints"])

    with wakeups.subscribe(wakeups.deployment_topic(scaled), woke):
        reader = asyncio.create_task(endpoints_at_cutover())
        await worker.run_once(wait=True)
        endpoints = await asyncio.wait_for(reader, 10)
    assert (await deployment(database, scaled))["status"] == "running"
    assert len(set(endpoints)) == 3, endpoints

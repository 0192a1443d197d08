"""The local runtime with several instances: each health-gated, each reported with its own
health and restarts; 0 instances keeps the app stopped; a lost instance makes the release
start again while the others serve."""

from __future__ import annotations

import contextlib
import os
import signal

from worker_support import Recorder, eventually, extracted_release, get_json

from aether.worker.runtimes.local import LocalRuntime


async def test_replicas_run_as_separate_health_gated_processes(runtime: LocalRuntime) -> None:
    release = extracted_release(runtime.settings.data_dir, "hello", replicas=3)
    record = Recorder()
    observed = await runtime.deploy(release, record)
    assert record.phases() == ["starting", "starting", "starting", "healthy"]
    processes = runtime.processes_of("hello")
    assert len({p.port for p in processes}) == 3
    for process in processes:
        status, body = await get_json(process.endpoint + "/")
        assert status == 200 and body["deployment_id"] == release.deployment_id
    found = await runtime.instances("hello")
    assert found is not None
    assert [(i.state, i.health, i.restarts) for i in found] == [("running", "healthy", 0)] * 3
    assert len({i.id for i in found}) == 3
    assert all(i.started_at and i.endpoint for i in found)
    assert await runtime.observe("hello") == observed
    # A crash in one instance: its supervisor restarts it, the others go on answering.
    await get_json(processes[1].endpoint + "/crash")

    async def restarted() -> bool:
        now = await runtime.instances("hello")
        return now is not None and now[1].restarts == 1 and now[1].health == "healthy"

    await eventually(restarted, timeout=30)
    status, _ = await get_json(processes[0].endpoint + "/")
    assert status == 200


async def test_scaled_to_zero_runs_nothing_and_keeps_the_app(runtime: LocalRuntime) -> None:
    first = extracted_release(runtime.settings.data_dir, "hello", replicas=2)
    await runtime.deploy(first, Recorder())
    old = runtime.processes_of("hello")
    stopped = extracted_release(runtime.settings.data_dir, "hello", replicas=0)
    record = Recorder()
    observed = await runtime.deploy(stopped, record)
    assert observed.deployment_id == stopped.deployment_id and observed.endpoint is None
    assert "scaled to 0" in dict(record.events)["healthy"]

    async def all_stopped() -> bool:
        return not any(p.alive for p in old)

    await eventually(all_stopped, timeout=30)
    assert await runtime.instances("hello") == []
    assert await runtime.observe("hello") == observed
    back = extracted_release(runtime.settings.data_dir, "hello", replicas=1)
    again = await runtime.deploy(back, Recorder())
    status, body = await get_json(again.endpoint + "/")
    assert status == 200 and body["deployment_id"] == back.deployment_id


async def test_a_lost_instance_starts_the_release_again(runtime: LocalRuntime) -> None:
    release = extracted_release(runtime.settings.data_dir, "hello", replicas=2)
    await runtime.deploy(release, Recorder())
    first, second = runtime.processes_of("hello")
    assert second.record is not None
    os.kill(second.record.shim_pid, signal.SIGKILL)  # its supervisor is gone: nothing restarts it

    async def gone() -> bool:
        return not second.supervisor_alive

    await eventually(gone)
    assert await runtime.observe("hello") is None  # the loop deploys the release again
    status, _ = await get_json(first.endpoint + "/")
    assert status == 200  # the survivor serves meanwhile
    if second.record.app_pid:  # the orphaned app itself (it stops once it sees no supervisor)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second.record.app_pid, signal.SIGKILL)
    record = Recorder()
    again = await runtime.deploy(release, record)
    assert again.healthy
    assert record.phases()[:2] == ["starting", "healthy"]  # only the lost one started
    now = runtime.processes_of("hello")
    assert len(now) == 2 and now[0] is first and first.alive
    assert now[1].instance == 1 and now[1].alive

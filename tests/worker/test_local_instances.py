"""The local runtime with several instances: each health-gated, each reported with its own
health and restarts; 0 instances keeps the app stopped; a lost instance makes the release
start again while the others serve."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from worker_support import (
    PLAIN_APP,
    Recorder,
    eventually,
    extracted_release,
    get_json,
    worker_settings,
)

from aether.worker.outcomes import Fatal
from aether.worker.runtimes import advertise
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.local import LocalRuntime
from aether.worker.runtimes.process import AppProcess


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


def _scaled(release: Release, serving: str, replicas: int) -> Release:
    """The next release of a scale: another deployment, only the replica count differs."""
    return replace(release, deployment_id=str(uuid.uuid4()), replicas=replicas, scales_from=serving)


def _pids(processes: list[AppProcess]) -> list[tuple[int, int | None]]:
    return [(p.record.shim_pid, p.record.app_pid) for p in processes if p.record is not None]


async def test_a_scale_starts_and_stops_only_the_difference(runtime: LocalRuntime) -> None:
    first = extracted_release(runtime.settings.data_dir, "hello", replicas=2)
    await runtime.deploy(first, Recorder())
    two = runtime.processes_of("hello")
    pids, ids = _pids(two), [i.id for i in await runtime.instances("hello") or []]
    # 2 → 3: one new instance, health-gated; the two running ones are the same processes.
    up = _scaled(first, first.deployment_id, 3)
    record = Recorder()
    observed = await runtime.deploy(up, record)
    assert observed.deployment_id == up.deployment_id
    assert record.phases() == ["starting", "healthy"]
    three = runtime.processes_of("hello")
    assert three[:2] == two and _pids(three[:2]) == pids and all(p.alive for p in three)
    found = await runtime.instances("hello") or []
    assert [i.id for i in found][:2] == ids and len({i.id for i in found}) == 3
    assert {i.deployment_id for i in found} == {up.deployment_id}  # the router's filter
    # 3 → 1: two drained and stopped, the first untouched.
    down = _scaled(first, up.deployment_id, 1)
    record = Recorder()
    await runtime.deploy(down, record)
    assert runtime.processes_of("hello") == three[:1] and _pids(three[:1]) == pids[:1]

    async def two_stopped() -> bool:
        return not any(p.supervisor_alive for p in three[1:])

    await eventually(two_stopped, timeout=30)
    assert three[0].alive
    assert record.phases()[:1] == ["healthy"]
    # 0 keeps the app, stopped; back from 0 starts the wanted number.
    zero = _scaled(first, down.deployment_id, 0)
    assert (await runtime.deploy(zero, Recorder())).endpoint is None

    async def none_runs() -> bool:
        return not three[0].supervisor_alive

    await eventually(none_runs, timeout=30)
    assert await runtime.instances("hello") == []
    back = _scaled(first, zero.deployment_id, 2)
    again = await runtime.deploy(back, Recorder())
    status, body = await get_json(str(again.endpoint) + "/")
    assert status == 200 and body["deployment_id"] == first.deployment_id  # its folder
    assert len(runtime.processes_of("hello")) == 2


async def test_a_worker_adopts_the_instances_a_scale_kept(runtime: LocalRuntime) -> None:
    first = extracted_release(runtime.settings.data_dir, "hello", replicas=1)
    await runtime.deploy(first, Recorder())
    up = _scaled(first, first.deployment_id, 2)
    await runtime.deploy(up, Recorder())
    pids = _pids(runtime.processes_of("hello"))
    await runtime.stop()  # the worker goes; the apps stay
    later = LocalRuntime(runtime.settings, stop_grace_secs=3.0)
    try:
        await later.start()
        observed = await later.observe("hello")
        assert observed is not None and observed.deployment_id == up.deployment_id
        assert _pids(later.processes_of("hello")) == pids
        # The next scale keeps them too.
        down = _scaled(first, up.deployment_id, 1)
        await later.deploy(down, Recorder())
        assert _pids(later.processes_of("hello")) == pids[:1]
    finally:
        await later.stop_apps()
        await later.stop()


async def test_an_app_listening_on_loopback_only_fails_its_health_gate(tmp_path: Path) -> None:
    address = advertise.default_route_addr()
    if address is None or not advertise.is_own(address):
        pytest.skip("this host has no address of its own besides loopback")
    settings = worker_settings(tmp_path / "data", AETHER_WORKER_ADVERTISE_ADDR=address)
    runtime = LocalRuntime(settings, stop_grace_secs=3.0)
    try:
        # The fixture app listens on 127.0.0.1 only: other hosts could never reach it.
        release = extracted_release(settings.data_dir, "hello")
        with pytest.raises(Fatal, match=f"not on {address}:.*listen on every address"):
            await runtime.deploy(release, Recorder())
        assert runtime.processes_of("hello") == []
        everywhere = extracted_release(settings.data_dir, "hello", source=_everywhere(tmp_path))
        observed = await runtime.deploy(everywhere, Recorder())
        assert observed.endpoint == f"http://{address}:{runtime.processes_of('hello')[0].port}"
    finally:
        await runtime.stop_apps()
        await runtime.stop()


def _everywhere(tmp_path: Path) -> Path:
    """The fixture app, listening on every address."""
    folder = tmp_path / "everywhere"
    shutil.copytree(PLAIN_APP, folder)
    server = folder / "server.js"
    server.write_text(server.read_text().replace('"127.0.0.1"', '"0.0.0.0"'))
    return folder


async def test_stopping_an_ended_instance_keeps_its_successors_record(
    runtime: LocalRuntime,
) -> None:
    # A scale to 0 and straight back up: the new instance 0 writes its record where the old
    # one's was while the old one's stop is still finishing; that stop must not delete it.
    import dataclasses
    import json
    import subprocess

    from aether.worker.runtimes.supervision import read_record

    await runtime.deploy(extracted_release(runtime.settings.data_dir, "hello"), Recorder())
    old = runtime.processes_of("hello")[0]
    assert old.record is not None
    os.kill(old.record.shim_pid, signal.SIGTERM)

    async def ended() -> bool:
        return not old.supervisor_alive

    await eventually(ended)
    stand_in = subprocess.Popen(["sleep", "60"])  # a live pid for the successor's supervisor
    successor = replace(old.record, shim_pid=stand_in.pid, launch_id=uuid.uuid4().hex)
    old.record_path.write_text(json.dumps(dataclasses.asdict(successor)))
    try:
        await old.stop(1.0)
        assert read_record(old.record_path) == successor
    finally:
        old.record_path.unlink(missing_ok=True)
        stand_in.kill()
        stand_in.wait()

"""The local runtime against real node processes: health-gated start, cutover, failures,
crash restarts and environment."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from worker_support import Recorder, eventually, extracted_release, get_json

from aether.worker.outcomes import Fatal
from aether.worker.runtimes import process as process_module
from aether.worker.runtimes.local import LocalRuntime
from aether.worker.runtimes.supervision import read_record, supervisor_alive


async def test_deploy_starts_the_release_and_it_answers(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    release = extracted_release(runtime.settings.data_dir, "hello")
    record = Recorder()
    observed = await runtime.deploy(release, record)
    assert observed.healthy and observed.deployment_id == release.deployment_id
    status, body = await get_json(observed.endpoint + "/")
    assert status == 200 and body["deployment_id"] == release.deployment_id
    assert record.phases() == ["starting", "healthy"]
    assert await runtime.observe("hello") == observed


async def test_redeploy_serves_the_new_release_and_stops_the_old(runtime: LocalRuntime) -> None:
    first = extracted_release(runtime.settings.data_dir, "hello")
    await runtime.deploy(first, Recorder())
    old_process = runtime.process_of("hello")
    second = extracted_release(runtime.settings.data_dir, "hello", env={"APP_VERSION": "2.0.0"})
    record = Recorder()
    observed = await runtime.deploy(second, record)
    status, body = await get_json(observed.endpoint)
    assert body == {"deployment_id": second.deployment_id, "version": "2.0.0"}
    assert old_process is not None
    # The old release drains and stops in the background, off the app's deploy path.
    old_folder = runtime.apps_dir / "hello" / first.deployment_id

    async def retired() -> bool:
        return not old_process.alive and not old_folder.exists()

    await eventually(retired)
    assert record.phases() == ["starting", "healthy", "cutover", "stopped"]


async def test_the_next_deploy_does_not_wait_for_the_previous_release_to_stop(
    runtime: LocalRuntime,
) -> None:
    releases = [extracted_release(runtime.settings.data_dir, "hello") for _ in range(3)]
    await runtime.deploy(releases[0], Recorder())
    first_process = runtime.process_of("hello")
    await runtime.deploy(releases[1], Recorder())
    observed = await runtime.deploy(releases[2], Recorder())  # while the first may still drain
    assert observed.deployment_id == releases[2].deployment_id
    await runtime.stop()  # waits for every retiring release: nothing outlives the runtime
    assert first_process is not None and not first_process.alive


async def _assert_previous_keeps_serving(runtime: LocalRuntime, previous_id: str) -> None:
    observed = await runtime.observe("hello")
    assert observed is not None and observed.deployment_id == previous_id
    status, body = await get_json(observed.endpoint)
    assert status == 200 and body["deployment_id"] == previous_id


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ({"env": {"CRASH_AT_BOOT": "1"}}, ("exited with code 3", "configured to crash at boot")),
        ({"start_command": "no-such-binary --serve"}, ("exited with code 127", "not found")),
    ],
    ids=["crash-at-boot", "bad-start-command"],
)
async def test_a_release_that_dies_at_boot_fails_with_its_exit_and_output_and_the_previous_serves(
    runtime: LocalRuntime, broken: dict[str, Any], said: tuple[str, str]
) -> None:
    good = extracted_release(runtime.settings.data_dir, "hello")
    await runtime.deploy(good, Recorder())
    release = extracted_release(runtime.settings.data_dir, "hello", **broken)
    with pytest.raises(Fatal) as failure:
        await runtime.deploy(release, Recorder())
    assert all(text in failure.value.message for text in said), failure.value.message
    await _assert_previous_keeps_serving(runtime, good.deployment_id)


async def test_never_healthy_fails_at_the_rollout_timeout(runtime: LocalRuntime) -> None:
    good = extracted_release(runtime.settings.data_dir, "hello")
    started = time.monotonic()
    await runtime.deploy(good, Recorder())
    # Long enough for the silent release to start and say so however loaded the machine is
    # (the same app came up and answered in `took`), short enough to keep the test quick.
    took = time.monotonic() - started
    timeout = max(1.5, 3 * took)
    runtime.settings = dataclasses.replace(runtime.settings, rollout_timeout_secs=timeout)
    silent = extracted_release(runtime.settings.data_dir, "hello", env={"NEVER_LISTEN": "1"})
    started = time.monotonic()
    with pytest.raises(Fatal) as failure:
        await runtime.deploy(silent, Recorder())
    waited = time.monotonic() - started
    assert timeout <= waited < timeout + 10  # it gave the release its time, then gave up
    assert "not healthy in time" in failure.value.message
    assert "configured never to listen" in failure.value.message
    await _assert_previous_keeps_serving(runtime, good.deployment_id)


async def test_health_path_must_answer_2xx(runtime: LocalRuntime) -> None:
    release = extracted_release(runtime.settings.data_dir, "hello", health_path="/healthz")
    observed = await runtime.deploy(release, Recorder())
    assert observed.healthy


async def test_crashed_process_is_restarted_and_the_restart_recorded(runtime: LocalRuntime) -> None:
    release = extracted_release(runtime.settings.data_dir, "hello")
    record = Recorder()
    observed = await runtime.deploy(release, record)
    await get_json(observed.endpoint + "/crash")

    async def restarted_and_answering() -> bool:
        if "restarted" not in record.phases():
            return False
        status, _ = await get_json(observed.endpoint)
        return status == 200

    await eventually(restarted_and_answering)
    crash = dict(record.events)["crashed"]
    assert "exit code 7" in crash


async def test_process_environment(runtime: LocalRuntime, tmp_path: Path) -> None:
    script = "node -e \"require('fs').writeFileSync(process.env.HOME + '/env.json', JSON.stringify(process.env)); require('./server.js')\""
    secrets = {
        "AETHER_API_TOKEN": "secret",
        "DATABASE_URL": "postgresql://x",
        "XDG_CACHE_HOME": "/root/.cache",
    }
    rt = LocalRuntime(runtime.settings, base_env={**os.environ, **secrets}, stop_grace_secs=1.0)
    try:
        release = extracted_release(
            runtime.settings.data_dir, "envapp", start_command=script, env={"GREETING": "hi"}
        )
        observed = await rt.deploy(release, Recorder())
        import json

        scratch = rt.apps_dir / "envapp" / "scratch" / release.deployment_id
        env = json.loads((scratch / "home" / "env.json").read_text())
        assert env["PORT"] == observed.endpoint.rsplit(":", 1)[1]
        assert env["AETHER_DEPLOYMENT_ID"] == release.deployment_id
        assert env["AETHER_DIGEST"] == release.digest
        assert env["GREETING"] == "hi" and env["NODE_ENV"] == "production"
        assert env["HOME"] == str(scratch / "home") and env["TMPDIR"] == str(scratch / "tmp")
        assert not set(secrets) & set(env)
    finally:
        await rt.stop_apps()
        await rt.stop()


async def test_apps_outlive_a_stopped_runtime_until_removed_or_stopped(
    runtime: LocalRuntime,
) -> None:
    await runtime.deploy(extracted_release(runtime.settings.data_dir, "one"), Recorder())
    await runtime.deploy(extracted_release(runtime.settings.data_dir, "two"), Recorder())
    processes = [runtime.process_of("one"), runtime.process_of("two")]
    assert all(p is not None for p in processes)
    await runtime.remove("one")
    assert await runtime.observe("one") is None
    assert not (runtime.apps_dir / "one").exists()
    assert not processes[0].alive
    await runtime.stop()  # the worker goes: its apps stay
    assert processes[1].alive
    status, _ = await get_json(processes[1].endpoint)
    assert status == 200
    await runtime.stop_apps()
    assert not processes[1].alive


async def test_starting_a_release_again_stops_the_supervisor_no_worker_adopted(
    runtime: LocalRuntime,
) -> None:
    """A worker that did not adopt a running release starts it again (same deployment, same
    run record): the first supervisor is stopped, not left running where nobody finds it."""
    release = extracted_release(runtime.settings.data_dir, "hello")
    await runtime.deploy(release, Recorder())
    first = runtime.process_of("hello")
    assert first is not None and first.record is not None
    first_record = first.record
    stranger = LocalRuntime(runtime.settings, stop_grace_secs=1.0)  # never adopted it
    try:
        await stranger.deploy(release, Recorder())
        assert not supervisor_alive(first_record)
        second = stranger.process_of("hello")
        assert second is not None and second.alive
        status, _ = await get_json(second.endpoint)
        assert status == 200
    finally:
        await stranger.stop_apps()
        await stranger.stop()


async def test_a_supervisor_whose_record_another_took_over_stops_by_itself(
    runtime: LocalRuntime,
) -> None:
    """Should two supervisors of one deployment still race for the run record, the one that
    lost it stops, without touching the record or the scratch folder it no longer owns."""
    release = extracted_release(runtime.settings.data_dir, "hello")
    await runtime.deploy(release, Recorder())
    process = runtime.process_of("hello")
    assert process is not None and process.record is not None
    mine = process.record
    theirs = dataclasses.replace(mine, shim_pid=mine.shim_pid + 1, launch_id="theirs")
    theirs.write(process.record_path)

    async def stopped() -> bool:
        return not supervisor_alive(mine)

    await eventually(stopped)
    assert read_record(process.record_path) == theirs
    assert (runtime.apps_dir / "hello" / "scratch" / release.deployment_id).is_dir()


async def test_a_release_runs_on_the_node_of_its_major_or_not_at_all(tmp_path: Path) -> None:
    """PATH's node serves its own major; a configured one (here a wrapper that sets the app's
    version, then runs the real node) serves another; a major nobody has is refused."""
    import shutil

    from worker_support import worker_settings

    from aether.pack.nodeversion import binary_version, parse_major

    real = shutil.which("node")
    assert real is not None
    major = parse_major(binary_version(real) or "")
    assert major is not None
    wrapper = tmp_path / "node-other/bin/node"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(
        f'#!/bin/sh\nif [ "$1" = --version ]; then echo v{major + 1}.0.0; exit 0; fi\n'
        f'APP_VERSION=via-wrapper exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    settings = worker_settings(
        tmp_path / "data", AETHER_NODE_BINARIES=f'{{"{major + 1}": "{wrapper}"}}'
    )
    runtime = LocalRuntime(settings, stop_grace_secs=3.0)
    try:
        same = extracted_release(settings.data_dir, "hello", node_major=major)
        observed = await runtime.deploy(same, Recorder())
        assert (await get_json(observed.endpoint))[1]["version"] != "via-wrapper"
        other = extracted_release(settings.data_dir, "hello", node_major=major + 1)
        observed = await runtime.deploy(other, Recorder())
        assert (await get_json(observed.endpoint))[1]["version"] == "via-wrapper"
        nobody = extracted_release(settings.data_dir, "hello", node_major=major + 2)
        with pytest.raises(Fatal, match=f"built for Node.js {major + 2}"):
            await runtime.deploy(nobody, Recorder())
    finally:
        await runtime.stop_apps()
        await runtime.stop()


async def test_a_supervisor_launcher_waits_ready_for_the_next_start(runtime: LocalRuntime) -> None:
    await runtime.start()  # starts the first spare launcher
    spare = process_module._spare
    assert spare is not None and spare.poll() is None
    record = Recorder()
    observed = await runtime.deploy(extracted_release(runtime.settings.data_dir, "hello"), record)
    assert observed.healthy and record.phases() == ["starting", "healthy"]
    assert spare.poll() == 0  # it became the supervisor (forked off, then exited)

    async def next_spare() -> bool:  # started once the health gate passed
        ready = process_module._spare
        return ready is not None and ready is not spare and ready.poll() is None

    await eventually(next_spare)
    waiting = process_module._spare
    await runtime.stop()
    assert waiting is not None and waiting.poll() == 0 and process_module._spare is None


async def test_a_deploy_that_finds_no_launcher_waiting_starts_one_first(
    runtime: LocalRuntime,
) -> None:
    """Deploys back to back: the launcher readied after the last health gate is not there
    yet. The deploy starts one before it prepares the release, not when its app starts."""
    await runtime.start()
    await runtime._close_spare()  # as if the previous deploy had just taken it
    launchers: list[object] = []

    class Watching(Recorder):
        async def __call__(self, phase: str, message: str) -> None:
            if phase == "starting":
                launchers.append(process_module._spare)
            await super().__call__(phase, message)

    observed = await runtime.deploy(
        extracted_release(runtime.settings.data_dir, "hello"), Watching()
    )
    assert observed.healthy
    assert launchers and launchers[0] is not None  # one was on its way when the app started


async def test_a_dead_spare_launcher_is_replaced_at_the_start(runtime: LocalRuntime) -> None:
    process_module.ready_spare()
    spare = process_module._spare
    assert spare is not None
    spare.kill()
    spare.wait()
    observed = await runtime.deploy(
        extracted_release(runtime.settings.data_dir, "hello"), Recorder()
    )
    status, body = await get_json(observed.endpoint)
    assert status == 200 and body["deployment_id"] == observed.deployment_id


def test_the_supervisor_imports_neither_asyncio_nor_the_worker() -> None:
    """What a supervisor costs to start: the standard library's basics and its own modules."""
    code = "import sys, aether.worker.runtimes.shim; print(sorted(sys.modules))"
    env = {**os.environ, **process_module.supervisor_env()}
    argv = [*process_module.supervisor_argv()[:2], "-c", code]
    loaded = set(
        ast.literal_eval(
            subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
        )
    )
    assert not loaded & {
        "asyncio",
        "aether.worker.loop",
        "aether.store",
        "aether.worker.runtimes.local",
    }

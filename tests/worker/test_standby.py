"""Standbys of the local runtime against real Node.js apps: a code-only redeploy starts in the
Node.js process that waited in the app's sandbox, and the app sees what a cold start sees;
anything that does not fit starts cold; standbys end with their app and with the worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from worker_support import (
    FIXTURES,
    WARM,
    Recorder,
    deploy_and_ask,
    eventually,
    extracted_release,
    get_json,
    worker_settings,
)

from aether.worker.outcomes import Fatal
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.local import LocalRuntime
from aether.worker.runtimes.warmnode import BOOTSTRAP_NAME, gist

PROBE_APP = FIXTURES / "probe-app"
# What differs between two deployments of one configuration (PATH: its node_modules/.bin).
PER_DEPLOYMENT = {"PORT", "AETHER_DEPLOYMENT_ID", "AETHER_DIGEST", "HOME", "TMPDIR", "PATH", "PWD"}


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    secret = tmp_path / "data" / "secret.key"
    secret.parent.mkdir(parents=True)
    secret.write_text("the data dir's secret")
    rt = LocalRuntime(worker_settings(tmp_path / "data"), stop_grace_secs=3.0)
    try:
        yield rt
    finally:
        await rt.stop_apps()
        await rt.stop()


def probe(runtime: LocalRuntime, app: str = "probe", **fields: Any) -> Release:
    secret = str(runtime.settings.data_dir / "secret.key")
    env = {"PROBE_SECRET": secret, **fields.pop("env", {})}
    return extracted_release(
        runtime.settings.data_dir, app, source=fields.pop("source", PROBE_APP), env=env, **fields
    )


async def standby_waits(runtime: LocalRuntime, app: str = "probe") -> None:
    """Until the app's standby waits (it is registered once its Node.js said so)."""
    await eventually(lambda: runtime.standby_of(app), what="a standby")


def standby_processes(app_dir: Path) -> list[int]:
    """Node.js processes waiting in a standby of the app (by their bootstrap's path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(BOOTSTRAP_NAME.encode() in arg and str(app_dir).encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


def same_configuration(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in PER_DEPLOYMENT}


@pytest.fixture(params=["auto", "none"])
async def any_sandbox(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LocalRuntime]:
    """A runtime with bubblewrap where this host has it, and one without a sandbox."""
    secret = tmp_path / "data" / "secret.key"
    secret.parent.mkdir(parents=True)
    secret.write_text("the data dir's secret")
    settings = worker_settings(tmp_path / "data", AETHER_SANDBOX=request.param)
    rt = LocalRuntime(settings, stop_grace_secs=3.0)
    try:
        yield rt
    finally:
        await rt.stop_apps()
        await rt.stop()


async def test_a_code_only_redeploy_starts_in_the_standby_and_sees_what_a_cold_start_sees(
    any_sandbox: LocalRuntime,
) -> None:
    runtime = any_sandbox
    first = probe(runtime)
    started, cold = await deploy_and_ask(runtime, first)
    assert WARM not in started
    # A file in the app's folder when the standby starts (a download, say): hidden from it.
    (runtime.apps_dir / "probe" / "note.txt").write_text("not for the app")
    await standby_waits(runtime)
    second = probe(runtime)
    started, warm = await deploy_and_ask(runtime, second)
    assert WARM in started, started
    folder = runtime.apps_dir / "probe" / second.deployment_id
    assert same_configuration(warm["env"]) == same_configuration(cold["env"])
    env = warm["env"]
    assert env["AETHER_DEPLOYMENT_ID"] == second.deployment_id
    assert env["AETHER_DIGEST"] == second.digest
    process = runtime.process_of("probe")
    assert process is not None and env["PORT"] == str(process.port)
    bin_dir = str(folder / "node_modules" / ".bin")
    assert env["PATH"] == cold["env"]["PATH"].replace(
        str(runtime.apps_dir / "probe" / first.deployment_id / "node_modules" / ".bin"), bin_dir
    )
    assert env["HOME"] != cold["env"]["HOME"] and warm["home"] == "writable"
    assert Path(env["TMPDIR"]).parent == Path(env["HOME"]).parent
    assert warm["argv"] == [cold["argv"][0], str(folder / "server.js")]
    for key in ("argv0", "execArgv", "main", "uid", "gid", "stdin", "secret"):
        assert warm[key] == cold[key], key
    assert warm["cwd"] == env["PWD"] == str(folder)
    assert warm["child"] == {"argv": ["child"], "execArgv": [], "cwd": str(folder)}
    assert warm["main"] is True and warm["execArgv"] == []
    if runtime.isolation.isolated:
        assert warm["secret"].startswith("error:"), warm["secret"]
        assert warm["uid"] != os.geteuid() or not runtime.isolation.uid_per_app
        # Of its app's folder it sees its own release and scratch folder; what was there
        # when the standby started (the previous release, logs, run records) is empty.
        scratch = Path(env["HOME"]).parent
        assert warm["appFolder"].pop("scratch") == [scratch.name]
        assert warm["appFolder"].pop("note.txt").startswith("error:")  # (no read access)
        assert first.deployment_id in warm["appFolder"]
        assert all(listing == [] for listing in warm["appFolder"].values()), warm["appFolder"]
        assert cold["appFolder"] == {"scratch": [first.deployment_id]}


async def test_a_config_change_or_another_start_command_starts_cold(
    runtime: LocalRuntime,
) -> None:
    await deploy_and_ask(runtime, probe(runtime))
    await standby_waits(runtime)
    started, seen = await deploy_and_ask(runtime, probe(runtime, env={"FEATURE": "on"}))
    assert "cold start: the app's environment changed" in started, started
    assert seen["env"]["FEATURE"] == "on"
    await standby_waits(runtime)  # readied again for the new configuration
    command = "node server.js && true"
    started, _ = await deploy_and_ask(
        runtime, probe(runtime, env={"FEATURE": "on"}, start_command=command)
    )
    assert "cold start: the start command is not a plain `node <file>`" in started, started
    # That release's own command could never run in a standby: none is readied for it.
    await eventually(runtime.standby_settled)
    assert runtime.standby_of("probe") is None


async def test_an_environment_larger_than_the_sockets_buffer_is_handed_over_too(
    runtime: LocalRuntime,
) -> None:
    """The activation is written at once when the socket takes it, the rest from a thread
    (600 kB here, beyond a local socket's default buffer of ~200 kB)."""
    big = {f"BIG_{n}": str(n) * 100_000 for n in range(6)}
    await deploy_and_ask(runtime, probe(runtime, env=big))
    await standby_waits(runtime)
    started, seen = await deploy_and_ask(runtime, probe(runtime, env=big))
    assert WARM in started, started
    assert all(seen["env"][name] == value for name, value in big.items())


async def test_a_standby_whose_node_died_starts_the_release_cold(runtime: LocalRuntime) -> None:
    await deploy_and_ask(runtime, probe(runtime))
    await standby_waits(runtime)
    for pid in standby_processes(runtime.apps_dir / "probe"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    started, seen = await deploy_and_ask(runtime, probe(runtime))
    # (the standby ended, or its supervisor had yet to notice and Node.js did not answer)
    assert "(cold start: the " in started and WARM not in started, started
    assert seen["main"] is True


async def test_an_app_whose_top_level_throws_fails_its_deploy_with_its_output(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    await deploy_and_ask(runtime, probe(runtime))
    await standby_waits(runtime)
    broken = tmp_path / "broken"
    shutil.copytree(PROBE_APP, broken)
    (broken / "server.js").write_text('console.log("about to fail");\nthrow new Error("boom");\n')
    record = Recorder()
    with pytest.raises(Fatal) as failure:
        await runtime.deploy(probe(runtime, source=broken), record)
    assert WARM in dict(record.events)["starting"]
    message = failure.value.message
    assert "exited with code 1" in message and "Error: boom" in message, message
    assert BOOTSTRAP_NAME not in message  # the app's stack, as in a cold start
    observed = await runtime.observe("probe")  # the previous release serves on
    assert observed is not None and observed.healthy


async def test_an_es_module_app_starts_in_the_standby(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    esm = tmp_path / "esm"
    esm.mkdir()
    (esm / "package.json").write_text('{"type": "module", "scripts": {"start": "node server.js"}}')
    (esm / "server.js").write_text(
        'import http from "node:http";\n'
        "const body = JSON.stringify({ url: import.meta.url, argv: process.argv });\n"
        "http.createServer((req, res) => res.end(body)).listen(Number(process.env.PORT));\n"
    )
    record = Recorder()
    await runtime.deploy(extracted_release(runtime.settings.data_dir, "esm", source=esm), record)
    await standby_waits(runtime, "esm")
    release = extracted_release(runtime.settings.data_dir, "esm", source=esm)
    record = Recorder()
    observed = await runtime.deploy(release, record)
    assert WARM in dict(record.events)["starting"]
    _, seen = await get_json(observed.endpoint or "")
    main = runtime.apps_dir / "esm" / release.deployment_id / "server.js"
    assert seen["url"] == main.as_uri() and seen["argv"][1] == str(main)


async def test_a_crash_after_the_gate_restarts_cold(runtime: LocalRuntime) -> None:
    await runtime.deploy(extracted_release(runtime.settings.data_dir, "plain"), Recorder())
    await standby_waits(runtime, "plain")
    record = Recorder()
    observed = await runtime.deploy(extracted_release(runtime.settings.data_dir, "plain"), record)
    assert WARM in dict(record.events)["starting"]
    process = runtime.process_of("plain")
    assert process is not None and process.record is not None
    first_pid = process.record.app_pid
    await get_json((observed.endpoint or "") + "/crash")

    async def restarted() -> bool:
        status, _ = await get_json(observed.endpoint or "")
        return "restarted" in record.phases() and status == 200

    await eventually(restarted)
    assert process.record.app_pid != first_pid
    cmdline = Path(f"/proc/{process.record.app_pid}/cmdline").read_bytes()
    # The real command, cold: `sh -c 'exec node server.js'` (or the node it became).
    assert BOOTSTRAP_NAME.encode() not in cmdline and b"server.js" in cmdline


async def test_the_standby_ends_when_its_app_is_removed_and_when_the_worker_stops(
    runtime: LocalRuntime,
) -> None:
    await deploy_and_ask(runtime, probe(runtime, "one"))
    await deploy_and_ask(runtime, probe(runtime, "two"))
    await standby_waits(runtime, "one")
    await standby_waits(runtime, "two")
    for app in ("one", "two"):
        assert standby_processes(runtime.apps_dir / app), app
    await runtime.remove("one")
    await eventually(lambda: not standby_processes(runtime.apps_dir / "one"), what="no standby")
    serving = runtime.process_of("two")
    await runtime.stop()
    await eventually(lambda: not standby_processes(runtime.apps_dir / "two"), what="no standby")
    assert serving is not None and serving.alive  # the app itself outlives the worker
    scratch = runtime.apps_dir / "two" / "scratch"
    assert not [p for p in scratch.iterdir() if p.name.startswith("standby-")]


async def test_a_scale_keeps_the_standby_and_a_scale_to_zero_ends_it(
    runtime: LocalRuntime,
) -> None:
    release = probe(runtime)
    await deploy_and_ask(runtime, release)
    await standby_waits(runtime)
    standby = runtime.standby_of("probe")
    instances = await runtime.instances("probe")  # (what `aether ps` shows)
    assert instances is not None and [i.id for i in instances] == [f"{release.deployment_id[:8]}-1"]
    two = dataclasses.replace(
        release, deployment_id=str(uuid.uuid4()), replicas=2, scales_from=release.deployment_id
    )
    await runtime.deploy(two, Recorder())
    assert runtime.standby_of("probe") is standby and standby_processes(runtime.apps_dir / "probe")
    none = dataclasses.replace(
        release, deployment_id=str(uuid.uuid4()), replicas=0, scales_from=two.deployment_id
    )
    await runtime.deploy(none, Recorder())
    assert runtime.standby_of("probe") is None
    await eventually(lambda: not standby_processes(runtime.apps_dir / "probe"), what="its end")


async def test_no_standby_when_turned_off(tmp_path: Path) -> None:
    settings = worker_settings(tmp_path / "data", AETHER_APP_STANDBY="0")
    runtime = LocalRuntime(settings, stop_grace_secs=3.0)
    try:
        await deploy_and_ask(runtime, probe(runtime))
        await eventually(runtime.standby_settled)
        assert runtime.standby_of("probe") is None
        assert not standby_processes(runtime.apps_dir / "probe")
    finally:
        await runtime.stop_apps()
        await runtime.stop()


WORKER_SCRIPT = """
import asyncio, sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from pathlib import Path
from worker_support import Recorder, eventually, extracted_release, worker_settings
from aether.worker.runtimes.local import LocalRuntime

async def main():
    runtime = LocalRuntime(worker_settings(Path(sys.argv[1])))
    await runtime.deploy(extracted_release(runtime.settings.data_dir, "plain"), Recorder())
    await eventually(lambda: runtime.standby_of("plain"), what="a standby")
    print("waiting", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_standby_ends_when_its_worker_is_killed(tmp_path: Path) -> None:
    """kill -9 of the worker: its end of the standby's pipe closes, and the standby ends;
    the app itself runs on for the next worker."""
    data_dir = tmp_path / "data"
    tests = Path(__file__).parent
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, str(data_dir), str(tests), str(tests.parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert await asyncio.to_thread(worker.stdout.readline) == "waiting\n"
        app_dir = data_dir / "apps" / "plain"
        assert standby_processes(app_dir)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        await eventually(lambda: not standby_processes(app_dir), what="the standby's end")
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()
        next_worker = LocalRuntime(worker_settings(data_dir), stop_grace_secs=3.0)
        await next_worker.stop_apps()  # the app it adopts, then ends
        await next_worker.stop()


async def test_a_standby_that_cannot_start_says_why_in_the_next_releases_event(
    runtime: LocalRuntime,
) -> None:
    """A preload named relative to the release folder cannot load in the standby, which waits
    outside it: the next release starts cold and its ``starting`` event says what Node.js
    said."""
    release = probe(runtime, env={"NODE_OPTIONS": "--require ./package.json"})
    started, _ = await deploy_and_ask(runtime, release)
    assert "cold start" not in started, started  # (nothing was tried yet)
    await eventually(
        lambda: runtime.standby_failure("probe") and runtime.standby_settled(),
        what="the standby's end",
    )
    started, seen = await deploy_and_ask(
        runtime, probe(runtime, env={"NODE_OPTIONS": "--require ./package.json"})
    )
    assert "(cold start: the waiting Node.js process ended before it was ready: " in started
    assert "Cannot find module './package.json'" in started and WARM not in started, started
    assert seen["main"] is True


def test_the_gist_of_what_node_said_is_its_error_line_printable_and_short() -> None:
    said = (
        b"node:internal/modules/cjs/loader:1228\n  throw err;\n  ^\n\n"
        b"Error: Cannot find module './x.js'\nRequire stack:\n- internal/preload\n\n"
        b"Node.js v20.20.2\n"
    )
    assert gist(said) == "Error: Cannot find module './x.js'"
    assert gist(b"bad option: --nope\n\nNode.js v20.20.2\n") == "bad option: --nope"
    assert gist(b"TypeError [ERR_X]: \x1b[31mred\xff\n") == "TypeError [ERR_X]: ?[31mred\ufffd"
    assert len(gist(b"RangeError: " + b"x" * 1000)) == 300
    assert gist(b"") == ""

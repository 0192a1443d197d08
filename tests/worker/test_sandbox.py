"""A hostile tenant's app against the local runtime's sandbox: real Node processes try to read
the server's secrets, tamper with another app, signal processes that are not theirs, and run
past their limits — each attempt must fail. Needs bubblewrap (``.ci/run`` installs it); without
it these tests skip with the reason, unless ``AETHER_TEST_REQUIRE_SANDBOX=1``."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from layered_support import make_project, pack, store
from worker_support import (
    ATTACKER_APP,
    Recorder,
    eventually,
    extracted_release,
    get_json,
    worker_settings,
)

from aether.blobs.local import LocalBlobStore
from aether.errors import ConfigError
from aether.settings import WorkerSettings
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.local import LocalRuntime
from aether.worker.runtimes.releasedir import prepare

SECRETS = {
    "session": "SESSION-ADMIN-TOKEN-0xdeadbeef",
    "presign": "PRESIGN-KEY-0xfeedface",
    "database": "SQLITE-DATABASE-0xcafebabe",
}


def settings(data_dir: Path, **overrides: Any) -> WorkerSettings:
    return worker_settings(data_dir, **{"AETHER_ROLLOUT_TIMEOUT_SECS": "20", **overrides})


class Host:
    """The server's home and data dir laid out like the defaults, with secrets in place."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.data_dir = self.home / ".local" / "share" / "aether"
        self.session = self.home / ".cache" / "aether" / "session.json"
        for path, secret in (
            (self.session, SECRETS["session"]),
            (self.data_dir / "presign.key", SECRETS["presign"]),
            (self.data_dir / "aether.db", SECRETS["database"]),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secret)
            path.chmod(0o600)

    def runtime(self, **overrides: Any) -> LocalRuntime:
        base_env = {**os.environ, "HOME": str(self.home)}
        return LocalRuntime(settings(self.data_dir, **overrides), base_env=base_env)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


@pytest.fixture
async def sandboxed(host: Host) -> AsyncIterator[LocalRuntime]:
    runtime = host.runtime()
    if not runtime.isolation.isolated:
        reason = "no sandbox on this host: " + "; ".join(runtime.isolation.reasons)
        if os.environ.get("AETHER_TEST_REQUIRE_SANDBOX") == "1":
            pytest.fail(reason + " (AETHER_TEST_REQUIRE_SANDBOX=1)")
        pytest.skip(reason)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop_apps()
        await runtime.stop()


async def attack(endpoint: str, route: str, **query: Any) -> Any:
    status, body = await get_json(f"{endpoint}{route}?{urllib.parse.urlencode(query)}")
    assert status == 200, body
    return body


async def log_text(runtime: LocalRuntime, app: str, *, until: str) -> str:
    """The app's output once it holds ``until`` (the supervisor writes it a moment later)."""
    text = ""

    async def written() -> bool:
        nonlocal text
        text = "\n".join([line.line async for line in runtime.logs(app)])
        return until in text

    await eventually(written)
    return text


async def test_an_app_cannot_read_the_servers_secrets(sandboxed: LocalRuntime, host: Host) -> None:
    release = extracted_release(host.data_dir, "thief", source=ATTACKER_APP)
    observed = await sandboxed.deploy(release, Recorder())
    targets = [
        str(host.session),
        str(host.data_dir / "presign.key"),
        str(host.data_dir / "aether.db"),
        "../../../aether.db",  # relative to the release folder, as a start command would
        "/proc/1/environ",
    ]
    results = await attack(observed.endpoint, "/steal", paths=json.dumps(targets))
    assert [r["ok"] for r in results] == [False] * len(targets), results
    logs = await log_text(sandboxed, "thief", until="steal")
    assert not any(secret in logs for secret in SECRETS.values())


async def test_a_start_command_cannot_open_the_database(
    sandboxed: LocalRuntime, host: Host
) -> None:
    release = extracted_release(
        host.data_dir,
        "thief",
        source=ATTACKER_APP,
        start_command="cat ../../../aether.db; node server.js",
    )
    await sandboxed.deploy(release, Recorder())
    logs = await log_text(sandboxed, "thief", until="No such file")
    assert SECRETS["database"] not in logs


async def test_an_app_cannot_touch_another_apps_release_or_its_own(
    sandboxed: LocalRuntime, host: Host
) -> None:
    victim = extracted_release(host.data_dir, "victim")
    await sandboxed.deploy(victim, Recorder())
    victim_js = host.data_dir / "apps" / "victim" / victim.deployment_id / "server.js"
    before = victim_js.read_bytes()
    thief = extracted_release(host.data_dir, "thief", source=ATTACKER_APP)
    observed = await sandboxed.deploy(thief, Recorder())
    for path in (f"../../victim/{victim.deployment_id}/server.js", str(victim_js), "server.js"):
        result = await attack(observed.endpoint, "/write", path=path)
        assert result["ok"] is False, (path, result)
    assert (await attack(observed.endpoint, "/list", path="../../victim"))["ok"] is False
    assert victim_js.read_bytes() == before
    home = await attack(observed.endpoint, "/whoami")
    assert home["home"].startswith(str(host.data_dir / "apps" / "thief" / "scratch"))
    scratch_write = await attack(observed.endpoint, "/write", path=home["home"] + "/notes.txt")
    assert scratch_write["ok"] is True  # its own scratch is writable
    assert home["uid"] != os.geteuid() or os.geteuid() != 0  # root's apps get uids of their own


async def test_an_app_cannot_signal_other_apps_or_the_worker(
    sandboxed: LocalRuntime, host: Host
) -> None:
    victim = extracted_release(host.data_dir, "victim")
    victim_seen = await sandboxed.deploy(victim, Recorder())
    victim_pids = _tree(sandboxed.process_of("victim").record.app_pid)
    # A process of the worker's user, standing in for the worker itself.
    worker_like = subprocess.Popen(["sleep", "60"])
    try:
        thief = extracted_release(host.data_dir, "thief", source=ATTACKER_APP)
        observed = await sandboxed.deploy(thief, Recorder())
        for pid in [*victim_pids, worker_like.pid, os.getpid()]:
            result = await attack(observed.endpoint, "/kill", pid=pid)
            assert result["ok"] is False, (pid, result)
        assert worker_like.poll() is None
        status, _ = await get_json(victim_seen.endpoint)
        assert status == 200
    finally:
        worker_like.kill()
        worker_like.wait()


async def test_an_app_cannot_change_the_deps_layer_it_shares_with_another(
    sandboxed: LocalRuntime, host: Host, tmp_path: Path
) -> None:
    """Two apps with the same dependencies use one cached layer: read-only for both, whatever
    path the writer takes (its node_modules link or the layer's own path)."""
    blobs = LocalBlobStore(tmp_path / "blobs", public_url="http://127.0.0.1:1")
    await blobs.open()
    sandboxed.use_blob_store(blobs)
    try:
        victim_pack = pack(make_project(tmp_path / "victim", "// victim\n"), tmp_path / "o1")
        thief_pack = pack(make_project(tmp_path / "thief", "", ATTACKER_APP), tmp_path / "o2")
        victim = await store(blobs, victim_pack, str(uuid.uuid4()), app="victim")
        thief = await store(blobs, thief_pack, str(uuid.uuid4()), app="thief")
        victim_dir = await prepare(
            victim,
            sandboxed.apps_dir,
            blobs,
            Recorder(),
            require_signature=False,
            cache=sandboxed.layer_cache,
        )
        observed = await sandboxed.deploy(thief, Recorder())
        shared = sandboxed.layer_cache.layer_path(thief.layers[0].digest)
        assert os.readlink(victim_dir / "node_modules") == str(shared)
        before = (victim_dir / "node_modules" / "left-pad" / "index.js").read_bytes()
        for path in (
            "node_modules/left-pad/index.js",
            str(shared / "left-pad" / "index.js"),
            "node_modules/added.js",
            str(shared / "added.js"),
        ):
            result = await attack(observed.endpoint, "/write", path=path)
            assert result["ok"] is False, (path, result)
        assert (victim_dir / "node_modules" / "left-pad" / "index.js").read_bytes() == before
        assert not (shared / "added.js").exists()
    finally:
        await blobs.close()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the sandbox's init, the app)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        todo += [int(c) for c in children.read_text().split()] if children.exists() else []
    return found


@pytest.fixture
async def limited(host: Host) -> AsyncIterator[LocalRuntime]:
    runtime = host.runtime(
        AETHER_APP_MEMORY_MB=256,
        AETHER_APP_MAX_PROCESSES=48,
        AETHER_APP_MAX_OPEN_FILES=100,
        AETHER_APP_LOG_MAX_BYTES=64 * 1024,
    )
    if not runtime.isolation.uid_per_app and os.environ.get("AETHER_TEST_REQUIRE_SANDBOX") != "1":
        pytest.skip("per-app limits of processes need an app uid of its own (worker as root)")
    try:
        yield runtime
    finally:
        await runtime.stop_apps()
        await runtime.stop()


async def test_limits_hold_memory_processes_and_open_files(
    limited: LocalRuntime, host: Host
) -> None:
    release = extracted_release(host.data_dir, "greedy", source=ATTACKER_APP)
    observed = await limited.deploy(release, Recorder())
    assert (await attack(observed.endpoint, "/alloc", mb=64))["ok"] is True
    assert (await attack(observed.endpoint, "/alloc", mb=512))["ok"] is False
    spawned = await attack(observed.endpoint, "/spawn", n=100)
    assert spawned["started"] < 48 and spawned["errors"] == ["EAGAIN"], spawned
    files = await attack(observed.endpoint, "/files", n=500)  # (last: it keeps them open)
    assert files["opened"] < 100 and files["error"] == "EMFILE"


async def test_app_logs_are_rotated_within_their_byte_limit(
    limited: LocalRuntime, host: Host
) -> None:
    release = extracted_release(host.data_dir, "chatty", source=ATTACKER_APP)
    observed = await limited.deploy(release, Recorder())
    await attack(observed.endpoint, "/spam", lines=2000)  # ~2 MB of output
    logs_dir = host.data_dir / "apps" / "chatty" / "logs"

    async def done() -> bool:
        return "spam done" in [line.line async for line in limited.logs("chatty", tail=1)]

    await eventually(done)
    total = sum(path.stat().st_size for path in logs_dir.iterdir())
    assert total <= 64 * 1024 + 16 * 1024 + 2048  # the limit, plus the file being written
    assert len(list(logs_dir.iterdir())) > 1


async def test_without_isolation_one_owner_only_unless_allowed(host: Host) -> None:
    runtime = host.runtime(AETHER_SANDBOX="none")
    try:
        await runtime.start()
        assert runtime.capabilities()["isolation"]["kind"] == "none"
        await runtime.deploy(extracted_release(host.data_dir, "mine", owner="alice"), Recorder())
        await runtime.deploy(
            extracted_release(host.data_dir, "also-mine", owner="alice"), Recorder()
        )
        with pytest.raises(Fatal) as refused:
            await runtime.deploy(
                extracted_release(host.data_dir, "theirs", owner="bob"), Recorder()
            )
        assert "AETHER_SANDBOX_ALLOW_SHARED" in refused.value.message
    finally:
        await runtime.stop_apps()
        await runtime.stop()
    shared = host.runtime(AETHER_SANDBOX="none", AETHER_SANDBOX_ALLOW_SHARED=1)
    try:
        await shared.deploy(extracted_release(host.data_dir, "one", owner="alice"), Recorder())
        await shared.deploy(extracted_release(host.data_dir, "two", owner="bob"), Recorder())
    finally:
        await shared.stop_apps()
        await shared.stop()


async def test_a_required_sandbox_that_cannot_work_stops_the_worker(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no bubblewrap to be found
    runtime = host.runtime(AETHER_SANDBOX="bubblewrap")
    with pytest.raises(ConfigError) as refused:
        await runtime.start()
    assert "bubblewrap" in refused.value.message


async def test_apps_of_two_data_dirs_get_different_uids_and_cannot_signal_each_other(
    tmp_path: Path,
) -> None:
    """Two workers on one host with different data dirs, each running an app of the same
    name: they once got the same uid (a registry per data dir) and could signal each other."""
    if os.geteuid() != 0:
        pytest.skip("apps get uids of their own only when the worker runs as root")
    hosts = [Host(tmp_path / "one"), Host(tmp_path / "two")]
    runtimes = [host.runtime() for host in hosts]
    try:
        seen = [
            await runtime.deploy(
                extracted_release(host.data_dir, "hello", source=ATTACKER_APP), Recorder()
            )
            for host, runtime in zip(hosts, runtimes, strict=True)
        ]
        uids = [(await attack(observed.endpoint, "/whoami"))["uid"] for observed in seen]
        assert uids[0] != uids[1]
        assert os.geteuid() not in uids
        # Outside any PID namespace, so only the uids stand between them.
        second_app = _app_pid(runtimes[1], uids[1])
        assert not _can_signal(uids[0], second_app)
        assert _can_signal(uids[1], second_app)  # its own uid could: the check can fail
    finally:
        for runtime in runtimes:
            await runtime.stop_apps()
            await runtime.stop()


def _app_pid(runtime: LocalRuntime, uid: int) -> int:
    """The host pid of the app's own process (below the sandbox's init)."""
    process = runtime.process_of("hello")
    assert process is not None and process.record is not None and process.record.app_pid
    for pid in _tree(process.record.app_pid):
        if Path(f"/proc/{pid}").stat().st_uid == uid:
            return pid
    raise AssertionError(f"no process of uid {uid} under the app's sandbox")


def _can_signal(uid: int, pid: int) -> bool:
    """Whether a process of ``uid`` (and gid) may send ``pid`` a signal (``kill -0``)."""
    done = subprocess.run(
        ["/bin/sh", "-c", f"kill -0 {pid}"],
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0

"""``aether worker`` killed (-9) in the middle of a rollout, on both stacks.

The old release keeps serving throughout (apps outlive their worker: every probe through the
control plane's proxy must succeed, from before the kill until the rollout settled). After a
new worker starts, the deployment converges (running, or failed with a reason), and only the
current release runs, under one supervisor: no process of the old release or of the killed
attempt is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from faults_support import LEDGER, Api, app_members, wait_for, write_artifact

from plugins.live_server import stop_process

pytestmark = pytest.mark.slow


def via_proxy(port: int, app: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Host": f"{app}.localhost:{port}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def app_processes(data_dir: Path) -> dict[int, str]:
    """Live processes working in a release folder under ``data_dir`` (the app and its sandbox
    wrappers) → that release folder, ``apps/<app>/<deployment id>``."""
    apps = data_dir / "apps"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cwd.is_relative_to(apps) and len(cwd.relative_to(apps).parts) >= 2:
            found[int(entry.name)] = str(apps.joinpath(*cwd.relative_to(apps).parts[:2]))
    return found


def supervisors(pids: set[int]) -> set[int]:
    """The parents of ``pids`` that are not among them (a supervisor each, or the worker)."""
    parents = set()
    for pid in pids:
        try:
            parents.add(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]))
        except OSError:
            continue
    return parents - pids


class Workers:
    def __init__(self, server, logs: Path) -> None:
        self.server, self.logs, self.started = server, logs, []

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **self.server.server_env,
            "AETHER_WORKER_LEASE_SECS": "1.5",
            "AETHER_WORKER_POLL_SECS": "0.1",
        }
        with (self.logs / f"worker-{len(self.started)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "aether", "worker", "--data-dir", str(self.server.data_dir)],
                env=env, stdout=log, stderr=log,
            )  # fmt: skip
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            stop_process(process)


def test_a_worker_killed_mid_rollout(make_stack, tmp_path: Path, stack_kind: str) -> None:
    """v1 running under worker 1, v2 mid-rollout when worker 1 is killed; then worker 2."""
    stack = make_stack(args=("--no-worker",))
    server, api = stack.server, Api(stack.server)
    workers = Workers(server, tmp_path)
    first_worker = workers.start()
    try:
        v1 = api.deploy("steady", api.upload("steady", write_artifact(tmp_path / "1.tar.zst", app_members("1.0.0"))))  # fmt: skip
        wait_for(lambda: api.deployment(v1["id"])["status"] == "running", timeout=60, what="v1")
        digest = api.upload("steady", write_artifact(tmp_path / "2.tar.zst", app_members("2.0.0")))
        v2 = api.deploy("steady", digest, env={"BOOT_DELAY_MS": "3000"})
        events = f"/deployments/{v2['id']}/events"
        wait_for(
            lambda: any(e["phase"] == "starting" for e in api.json("GET", events)["events"]),
            timeout=60,
            what="v2 starting",
        )
        with OldRelease(server.port, "steady") as served:
            killed_at = time.monotonic()
            first_worker.send_signal(signal.SIGKILL)
            first_worker.wait(timeout=10)
            workers.start()
            v2 = wait_for(lambda: api.settled(v2["id"]), timeout=60, what="v2 converging")
            converge_secs = time.monotonic() - killed_at
        assert v2["status"] == "running" or (v2["status"] == "failed" and v2["failure_reason"])
        assert api.deployment(v1["id"])["status"] == "superseded"
        # only the current release runs, under one supervisor: nothing of v1, nothing of the
        # killed attempt
        release = str(server.data_dir / "apps" / "steady" / v2["id"])
        processes = wait_for(
            lambda: set((found := app_processes(server.data_dir)).values()) == {release} and found,
            timeout=20,
            what="only the current release running",
        )
        assert len(supervisors(set(processes))) == 1, processes
    finally:
        workers.stop_all()
    LEDGER.record(
        "worker_kill_mid_rollout",
        stack=stack_kind,
        kills=1,
        outcome=v2["status"],
        converge_secs=round(converge_secs, 2),
        orphans=0,
        old_release_probes_ok=served["ok"],
        old_release_probes_failed=served["failed"],
    )
    assert served["ok"] > 0 and served["failed"] == 0, served


class OldRelease:
    """Probes the app through the control plane's proxy while the block runs."""

    def __init__(self, port: int, app: str) -> None:
        self.port, self.app = port, app
        self.counts = {"ok": 0, "failed": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            ok = via_proxy(self.port, self.app) == 200
            self.counts["ok" if ok else "failed"] += 1
            time.sleep(0.05)  # the probe's rhythm, not a synchronisation

    def __enter__(self) -> dict[str, int]:
        self._thread.start()
        return self.counts

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

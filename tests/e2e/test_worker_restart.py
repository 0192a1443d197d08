"""Apps outlive their worker: ``kill -9`` or SIGTERM of an ``aether worker`` (or of an ``aether
serve`` with its embedded worker) interrupts no request; the next worker adopts the apps at once
(same identity, no lease to wait for) and later rollouts work as before. Apps stop only when
asked: ``aether worker --stop-apps``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import api_get, app_copy, cli, deploy, via_proxy, wait_for

from plugins.live_server import stop_process

pytestmark = pytest.mark.slow

# A lease no test may wait for: a takeover that needed it to expire would time the test out.
LONG_LEASE_SECS = "600"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Any], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(server: Any) -> subprocess.Popen[bytes]:
        env = {
            **server.server_env,
            "AETHER_WORKER_LEASE_SECS": LONG_LEASE_SECS,
            "AETHER_WORKER_POLL_SECS": "0.1",
        }
        with (tmp_path / f"worker-{len(started)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "aether", "worker", "--data-dir", str(server.data_dir)],
                env=env, stdout=log, stderr=log,
            )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process)


class RequestLoop:
    """GETs through the router on a thread until stopped (at most ``limit`` requests)."""

    def __init__(self, port: int, app: str, limit: int = 20_000) -> None:
        self.port, self.app, self.limit = port, app, limit
        self.ok = 0
        self.failures: list[tuple[int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.ok + len(self.failures) < self.limit:
            status, body = via_proxy(self.port, self.app, timeout=10)
            if status == 200:
                self.ok += 1
            else:
                self.failures.append((status, body[:200]))

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for_more(self, count: int) -> None:
        target = self.ok + count
        wait_for(lambda: self.ok >= target or bool(self.failures), what=f"{count} more requests")


def phases(server: Any, deployment_id: str) -> list[str]:
    events = api_get(server, f"/deployments/{deployment_id}/events")["events"]
    return [event["phase"] for event in events]


def port_of(server: Any, deployment_id: str) -> int:
    return int(api_get(server, f"/deployments/{deployment_id}")["endpoint"].rsplit(":", 1)[1])


def test_worker_kill9_under_load_loses_no_request_then_adopts_and_redeploys(
    live_server: Callable[..., Any], workers: Callable[[Any], Any], tmp_path: Path
) -> None:
    server = live_server(args=["--no-worker"])
    first_worker = workers(server)
    code, first = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0"))
    assert code == 0, first
    with RequestLoop(server.port, "hello") as load:
        load.wait_for_more(20)
        first_worker.send_signal(signal.SIGKILL)
        first_worker.wait(timeout=10)
        load.wait_for_more(50)  # nobody supervises the app now: it answers all the same
        workers(server)
        load.wait_for_more(50)
    assert load.failures == [] and load.ok >= 120
    assert "restarting" not in phases(server, first["deployment_id"])  # adopted, not restarted

    code, second = deploy(server.env, app_copy(tmp_path, "hello", "2.0.0"))
    assert code == 0, second  # the new worker holds the app at once: no lease had to expire
    status, body = via_proxy(server.port, "hello")
    assert status == 200 and json.loads(body)["version"] == "2.0.0"
    assert api_get(server, f"/deployments/{first['deployment_id']}")["status"] == "superseded"


def test_worker_killed_mid_rollout_keeps_the_old_release_and_the_next_converges(
    live_server: Callable[..., Any], workers: Callable[[Any], Any], tmp_path: Path
) -> None:
    server = live_server(args=["--no-worker"])
    first_worker = workers(server)
    code, first = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0"))
    assert code == 0, first
    code, second = deploy(
        server.env, app_copy(tmp_path, "hello", "2.0.0"), "--no-wait", "--env", "BOOT_DELAY_MS=4000"
    )
    assert code == 0, second
    second_id = second["deployment_id"]
    wait_for(lambda: "starting" in phases(server, second_id), what="the second rollout starting")
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait(timeout=10)
    status, body = via_proxy(server.port, "hello")
    assert status == 200 and json.loads(body)["version"] == "1.0.0"  # still serving

    second_worker = workers(server)
    wait_for(
        lambda: api_get(server, f"/deployments/{second_id}")["status"] == "running",
        timeout=60,
        what="the second deployment running under the new worker",
    )
    status, body = via_proxy(server.port, "hello")
    assert status == 200 and json.loads(body)["version"] == "2.0.0"
    assert api_get(server, f"/deployments/{first['deployment_id']}")["status"] == "superseded"
    assert phases(server, second_id).count("deploying") == 1

    new_port = port_of(server, second_id)
    second_worker.send_signal(signal.SIGTERM)  # a clean stop: the app stays up …
    assert second_worker.wait(timeout=20) == 0
    assert via_proxy(new_port, "hello")[0] == 200
    done = cli(server.server_env, "worker", "--stop-apps", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr  # … until the operator stops it
    assert "stopped 1 app process" in done.stderr
    assert via_proxy(new_port, "hello")[0] == 0


def test_serve_killed_and_restarted_adopts_its_apps(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from plugins.live_server import start_live_server, stop_apps

    root = tmp_path_factory.mktemp("restarted-server")
    server = start_live_server(root)
    try:
        code, result = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0"))
        assert code == 0, result
        deployment_id = result["deployment_id"]
        port = port_of(server, deployment_id)
        server.stop(signal.SIGKILL)  # the API, the router and the embedded worker die …
        status, body = via_proxy(port, "hello")  # … the app does not
        assert status == 200 and json.loads(body)["deployment_id"] == deployment_id
        token = server.admin_token
        server = start_live_server(root, env={"AETHER_API_TOKEN": token})
        server.admin_token = token
        wait_for(lambda: via_proxy(server.port, "hello")[0] == 200, what="the router back")
        after = api_get(server, f"/deployments/{deployment_id}")
        assert after["status"] == "running" and port_of(server, deployment_id) == port
        assert "restarting" not in phases(server, deployment_id)
    finally:
        server.stop()
        stop_apps(server.data_dir)

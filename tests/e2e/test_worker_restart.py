"""A separate ``aether worker`` process killed in the middle of a rollout: a new worker takes
the app over once the lease expires and converges (the new release runs, the old one is
superseded). Also checks that the worker's app processes die with it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import api_get, app_copy, deploy, via_proxy, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Any], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(server: Any) -> subprocess.Popen[bytes]:
        env = {
            **server.server_env,
            "AETHER_WORKER_LEASE_SECS": "1.5",
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
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def phases(server: Any, deployment_id: str) -> list[str]:
    events = api_get(server, f"/deployments/{deployment_id}/events")["events"]
    return [event["phase"] for event in events]


def test_worker_killed_mid_rollout_then_restarted_converges(
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
    old_endpoint = api_get(server, f"/deployments/{first['deployment_id']}")["endpoint"]
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait(timeout=10)
    old_port = int(old_endpoint.rsplit(":", 1)[1])
    wait_for(lambda: via_proxy(old_port, "hello")[0] == 0, what="the dead worker's app stopping")

    second_worker = workers(server)
    wait_for(
        lambda: api_get(server, f"/deployments/{second_id}")["status"] == "running",
        timeout=40,
        what="the second deployment running under the new worker",
    )
    status, body = via_proxy(server.port, "hello")
    assert status == 200 and json.loads(body)["version"] == "2.0.0"
    assert api_get(server, f"/deployments/{first['deployment_id']}")["status"] == "superseded"
    assert phases(server, second_id).count("deploying") == 1

    new_port = int(api_get(server, f"/deployments/{second_id}")["endpoint"].rsplit(":", 1)[1])
    second_worker.send_signal(signal.SIGTERM)  # a clean stop: its app stops with it
    assert second_worker.wait(timeout=20) == 0
    assert via_proxy(new_port, "hello")[0] == 0


def test_serve_restart_starts_running_apps_again(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from plugins.live_server import start_live_server

    root = tmp_path_factory.mktemp("restarted-server")
    server = start_live_server(root)
    try:
        code, result = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0"))
        assert code == 0, result
        before = api_get(server, f"/deployments/{result['deployment_id']}")["endpoint"]
        assert server.stop() == 0
        assert via_proxy(int(before.rsplit(":", 1)[1]), "hello")[0] == 0  # stopped with it
        token = server.admin_token
        server = start_live_server(root, env={"AETHER_API_TOKEN": token})
        server.admin_token = token
        wait_for(lambda: via_proxy(server.port, "hello")[0] == 200, what="the app back up")
        status, body = via_proxy(server.port, "hello")
        assert json.loads(body)["deployment_id"] == result["deployment_id"]
        events = phases(server, result["deployment_id"])
        assert events[-3:] == ["restarting", "starting", "healthy"]
        after = api_get(server, f"/deployments/{result['deployment_id']}")
        assert after["status"] == "running" and after["endpoint"] != before
    finally:
        server.stop()

"""The whole client against `aether serve` with its worker: a real rollout of the fixture Node
app, its output through `aether logs` (history and `-f`), and a rollback that really serves the
previous version again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from client_support import aether, aether_json, copy_app

DEADLINE_SECS = 30.0


def fetch_app(server, app: str, path: str = "/") -> str:  # type: ignore[no-untyped-def]
    """GET through the control plane's Host-header proxy, as a browser on <app>.localhost would."""
    request = urllib.request.Request(
        f"{server.url}{path}", headers={"Host": f"{app}.localhost:{server.port}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


@pytest.fixture
def server(live_server):  # type: ignore[no-untyped-def]
    return live_server()


def test_deploy_runs_logs_show_output_and_rollback_serves_the_old_version(
    server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    v1 = aether_json(server.env, "deploy", str(copy_app(tmp_path / "v1")))
    assert v1["status"] == "running" and v1["url"]
    assert fetch_app(server, "tiny-node-app", "/first") == "tiny-node-app 1.0.0\n"

    deadline = time.monotonic() + DEADLINE_SECS
    while True:  # the worker ships the app's output within moments
        history = aether(server.env, "logs", "--app", "tiny-node-app", "--tail", "20")
        assert history.returncode == 0, history.stderr
        if "GET /first" in history.stdout or time.monotonic() > deadline:
            break
    assert "GET /first" in history.stdout
    last = aether(server.env, "logs", "--app", "tiny-node-app", "--tail", "1", "--since", "1h")
    assert last.stdout.splitlines() == [line for line in history.stdout.splitlines()][-1:]

    v2 = aether_json(server.env, "deploy", str(copy_app(tmp_path / "v2", version="2.0.0")))
    assert v2["status"] == "running"
    assert fetch_app(server, "tiny-node-app") == "tiny-node-app 2.0.0\n"

    rolled = aether_json(server.env, "rollback", "--app", "tiny-node-app")
    assert rolled["status"] == "running" and rolled["artifact_digest"] == v1["digest"]
    assert fetch_app(server, "tiny-node-app") == "tiny-node-app 1.0.0\n"


def test_logs_follow_streams_new_lines_once(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    aether_json(server.env, "deploy", str(copy_app(tmp_path / "app")))
    command = [sys.executable, "-m", "aether", "logs", "--app", "tiny-node-app", "-f"]
    command += ["--format", "json"]
    with subprocess.Popen(command, env=server.env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        fetch_app(server, "tiny-node-app", "/live-1")
        fetch_app(server, "tiny-node-app", "/live-2")
        lines: list[dict[str, object]] = []
        deadline = time.monotonic() + DEADLINE_SECS
        while time.monotonic() < deadline and not any(
            "GET /live-2" in str(e.get("line")) for e in lines
        ):
            lines.append(json.loads(proc.stdout.readline()))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    texts = [str(e["line"]) for e in lines]
    assert texts.count("GET /live-1") == 1 and texts.count("GET /live-2") == 1
    assert all({"ts", "deployment_id", "stream", "line", "cursor"} <= set(e) for e in lines)
    assert proc.returncode == 0


def test_logs_of_an_unknown_app_is_not_found(server) -> None:  # type: ignore[no-untyped-def]
    result = aether(server.env, "logs", "--app", "ghost", "--format", "json")
    assert result.returncode == 20
    assert json.loads(result.stdout)["error"]["code"] == "not_found"

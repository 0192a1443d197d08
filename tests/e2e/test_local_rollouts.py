"""End to end on the embedded default: a real ``aether serve`` (SQLite, local blobs, in-process
worker, local runtime) and the real CLI deploying the dependency-free fixture app."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import api_get, api_lines, app_copy, deploy, via_proxy, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def server(live_server: Callable[..., Any]) -> Any:
    return live_server(env={"AETHER_ROLLOUT_TIMEOUT_SECS": "8"})


def answers(server: Any, app: str) -> dict[str, Any]:
    status, body = via_proxy(server.port, app)
    assert status == 200, body
    return json.loads(body)


def test_deploy_runs_and_the_app_url_answers(server: Any, tmp_path: Path) -> None:
    code, result = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0"))
    assert code == 0, result
    assert result["status"] == "running"
    assert result["url"] == f"http://hello.localhost:{server.port}/"
    body = answers(server, "hello")
    assert body == {"deployment_id": result["deployment_id"], "version": "1.0.0"}


def test_redeploy_cuts_over_without_a_failed_request(server: Any, tmp_path: Path) -> None:
    code, first = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0"))
    assert code == 0, first
    first_endpoint = api_get(server, f"/deployments/{_id(first)}")["endpoint"]
    failures: list[tuple[int, bytes]] = []
    versions: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            status, body = via_proxy(server.port, "hello")
            if status != 200:
                failures.append((status, body))
            else:
                versions.add(json.loads(body)["version"])

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        code, second = deploy(server.env, app_copy(tmp_path, "hello", "2.0.0"))
        if code == 0:  # the poller may not have asked since the cutover: until it has
            wait_for(lambda: "2.0.0" in versions, timeout=30, what="the poller seeing 2.0.0")
    finally:
        stop.set()
        poller.join()
    assert code == 0, second
    assert failures == []
    assert versions == {"1.0.0", "2.0.0"}
    assert answers(server, "hello")["version"] == "2.0.0"
    assert api_get(server, f"/deployments/{_id(first)}")["status"] == "superseded"
    port = int(first_endpoint.rsplit(":", 1)[1])
    # The old process gets a short drain after the cutover, then it is stopped.
    wait_for(lambda: via_proxy(port, "hello")[0] == 0, timeout=15, what="the old process gone")


def test_broken_releases_fail_and_the_previous_keeps_serving(server: Any, tmp_path: Path) -> None:
    code, good = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0"))
    assert code == 0, good
    broken = {
        # a command the client's preflight cannot see through (it refuses a plain `nope-x`)
        "bad start command": (
            app_copy(tmp_path, "hello", "1.0.1"),
            ["--start-command", "sh -c nope-x"],
        ),
        "crash at boot": (
            app_copy(tmp_path, "hello", "1.0.2", boot_js="process.exit(9);"),
            [],
        ),
        "never healthy": (
            app_copy(tmp_path, "hello", "1.0.3", boot_js="process.env.NEVER_LISTEN = '1';"),
            [],
        ),
    }
    reasons = {}
    for label, (folder, args) in broken.items():
        code, result = deploy(server.env, folder, *args)
        assert code == 20, (label, result)
        reasons[label] = result["error"]["message"]
        assert answers(server, "hello") == {"deployment_id": _id(good), "version": "1.0.0"}
    assert "code 127" in reasons["bad start command"]
    assert "code 9" in reasons["crash at boot"]
    assert "not healthy in time" in reasons["never healthy"]
    code, refused = deploy(
        server.env, app_copy(tmp_path, "hello", "1.0.4"), "--start-command", "nope-x"
    )
    assert code == 2 and "runs nope-x" in refused["error"]["message"]  # stopped before upload


def test_logs_history_and_resume_from_a_cursor(server: Any, tmp_path: Path) -> None:
    code, result = deploy(server.env, app_copy(tmp_path, "talker", "1.0.0"))
    assert code == 0, result
    lines: list[dict[str, Any]] = []

    def booted() -> bool:  # the worker ships the app's output within moments
        lines[:] = [x for x in api_lines(server, "/apps/talker/logs") if x["stream"] != "notice"]
        return any(x["line"].startswith("listening on") for x in lines)

    wait_for(booted, timeout=10, what="the app's boot lines")
    assert lines[0]["line"].startswith(f"booting {_id(result)}")
    cursor = lines[-1]["cursor"]
    via_proxy(server.port, "talker", "/after-cursor")
    newer: list[dict[str, Any]] = []

    def logged() -> bool:
        newer[:] = api_lines(server, f"/apps/talker/logs?cursor={cursor}")
        return any(x["line"] == "request GET /after-cursor" for x in newer)

    wait_for(logged, timeout=10, what="the request's log line")
    # Only what came after the cursor: the request's line, and at most a health check's that
    # landed after the boot lines were read; nothing read before.
    assert {x["line"] for x in newer} <= {"request GET /after-cursor", "request GET /"}
    assert not {x["cursor"] for x in newer} & {x["cursor"] for x in lines}


def _id(result: dict[str, Any]) -> str:
    return result["deployment_id"]

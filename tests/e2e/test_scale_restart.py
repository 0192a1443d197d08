"""End to end on the embedded default: `aether scale`, `ps`/`status` and `restart` with the
real CLI against a live `aether serve`; requests through the router spread over the
instances, and a rolling restart fails none."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import api_get, app_copy, cli, deploy, via_proxy, wait_for

pytestmark = pytest.mark.slow

# The fixture app answers {"deployment_id", "version"}: make its version name its port, so
# an answer tells which instance gave it.
BY_PORT = 'process.env.APP_VERSION = "port-" + process.env.PORT;'


@pytest.fixture
def server(live_server: Callable[..., Any]) -> Any:
    return live_server(env={"AETHER_ROLLOUT_TIMEOUT_SECS": "30"})


def as_json(done: Any) -> dict[str, Any]:
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def ps(server: Any, *args: str) -> dict[str, Any]:
    done = cli(server.env, "ps", *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return as_json(done)


def instances(server: Any) -> list[dict[str, Any]]:
    """What ``ps hello`` lists, straight from the API: for polling, where a CLI start each
    time would load the machine; the tests read the CLI's own answers once it holds."""
    items: list[dict[str, Any]] = api_get(server, "/apps/hello/status")["instances"]
    return items


def test_scale_ps_restart_and_scale_to_zero(server: Any, tmp_path: Path) -> None:
    code, result = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0", boot_js=BY_PORT))
    assert code == 0, result
    scaled = cli(server.env, "scale", "hello", "3", "--format", "json")
    assert scaled.returncode == 0, scaled.stderr
    assert as_json(scaled)["status"] == "running" and as_json(scaled)["replicas"] == 3

    def three_healthy() -> bool:
        items = instances(server)
        return len(items) == 3 and all(i["health"] == "healthy" for i in items)

    wait_for(three_healthy, timeout=30, what="three healthy instances")
    status = ps(server, "--app", "hello")
    assert status["app"] == "hello" and status["release"] == 2 and status["replicas"] == 3
    assert {i["worker"] for i in status["instances"]} and status["worker"]["live"] is True
    assert status["last_rollout"]["status"] == "running"
    assert set(status["instances"][0]) >= {
        "id", "state", "health", "restarts", "started_at", "host", "worker"
    }  # fmt: skip
    seen = set()
    for _ in range(30):
        code_, body = via_proxy(server.port, "hello")
        assert code_ == 200, body
        seen.add(json.loads(body)["version"])
    assert len(seen) == 3  # the router spreads requests over all three
    text = cli(server.env, "status", "hello")
    assert text.returncode == 0 and "3/3 healthy" in text.stdout, text.stdout

    failures: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            code_, body = via_proxy(server.port, "hello")
            if code_ != 200:
                failures.append((code_, body))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        restarted = cli(server.env, "restart", "hello", "--format", "json")
    finally:
        stop.set()
        poller.join()
    assert restarted.returncode == 0, restarted.stderr
    body = as_json(restarted)
    assert body["status"] == "running" and body["reason"] == "restart" and body["release"] == 2
    assert failures == []
    after = ps(server, "hello")
    assert after["last_rollout"]["reason"] == "restart"
    wait_for(
        lambda: {i["deployment_id"] for i in instances(server)} == {body["id"]},
        timeout=30,
        what="the restarted instances recorded",
    )

    stopped = cli(server.env, "scale", "hello", "0", "--format", "json")
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: instances(server) == [], timeout=30, what="no instances")
    assert ps(server, "hello")["instances"] == []
    code_, body_ = via_proxy(server.port, "hello")
    assert code_ == 503 and b"scaled to 0" in body_
    assert "scaled to 0" in cli(server.env, "ps", "hello").stdout
    back = cli(server.env, "scale", "hello", "1", "--format", "json")
    assert back.returncode == 0, back.stderr
    wait_for(lambda: via_proxy(server.port, "hello")[0] == 200, timeout=30, what="answers")

    refused = cli(server.env, "scale", "hello", "101", "--format", "json")
    assert refused.returncode != 0
    assert "between 0 and 100" in as_json(refused)["error"]["message"]
    releases = cli(server.env, "releases", "hello", "--format", "json")
    kinds = [r["kind"] for r in as_json(releases)["releases"]]
    assert kinds[:3] == ["scale", "scale", "scale"]


# Boots while nothing listens on the port named, crashes at boot once something does (apps
# share the host's network): the deploy comes up, a restart after the test listens cannot.
CRASH_ONCE_LISTENED = """
{
  const http = require("http"), net = require("net");
  const listen = http.Server.prototype.listen;
  http.Server.prototype.listen = function (...args) {
    net.connect(%d, "127.0.0.1")
      .on("connect", () => { console.error("too late to boot"); process.exit(3); })
      .on("error", () => listen.apply(this, args));
    return this;
  };
}
"""


def test_a_restart_that_does_not_come_up_fails_and_the_old_instances_serve(
    server: Any, tmp_path: Path
) -> None:
    with socket.socket() as switch:
        switch.bind(("127.0.0.1", 0))
        crash_later = CRASH_ONCE_LISTENED % switch.getsockname()[1]
        folder = app_copy(tmp_path, "hello", "1.0.0", boot_js=crash_later)
        code, result = deploy(server.env, folder)
        assert code == 0, result
        switch.listen(8)
        done = cli(server.env, "restart", "hello", "--format", "json")
    assert done.returncode != 0, done.stdout + done.stderr
    error = as_json(done)["error"]
    assert "exited with code 3" in error["message"] and "too late to boot" in error["message"]
    code_, body = via_proxy(server.port, "hello")
    assert code_ == 200 and json.loads(body)["deployment_id"] == result["deployment_id"]
    status = ps(server, "hello")
    assert status["last_rollout"]["status"] == "failed"
    assert status["last_rollout"]["reason"] == "restart"


# The answer names the process that gave it: its port and pid.
BY_PROCESS = 'process.env.APP_VERSION = process.env.PORT + "/" + process.pid;'


class RequestLoop:
    """GETs through the router in a thread until stopped: every answer's process, and any
    request that failed."""

    def __init__(self, port: int, app: str) -> None:
        self.port, self.app = port, app
        self.failures: list[tuple[int, bytes]] = []
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            code, body = via_proxy(self.port, self.app)
            if code != 200:
                self.failures.append((code, body))
            else:
                self.seen.append(json.loads(body)["version"])

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_scale_adds_or_removes_only_the_difference(server: Any, tmp_path: Path) -> None:
    code, result = deploy(server.env, app_copy(tmp_path, "hello", "1.0.0", boot_js=BY_PROCESS))
    assert code == 0, result

    def processes(count: int) -> set[str]:
        """The processes answering once ``ps`` shows ``count`` healthy instances."""
        wait_for(
            lambda: [i["health"] for i in instances(server)] == ["healthy"] * count,
            timeout=30,
            what=f"{count} healthy instances",
        )
        seen = {json.loads(via_proxy(server.port, "hello")[1])["version"] for _ in range(40)}
        assert len(seen) == count, seen  # the router spreads over exactly those
        return seen

    before = processes(1)
    for wanted in (2, 3, 1):
        with RequestLoop(server.port, "hello") as loop:
            scaled = cli(server.env, "scale", "hello", str(wanted), "--format", "json")
            assert scaled.returncode == 0, scaled.stderr
            now = processes(wanted)
        assert loop.failures == [] and loop.seen
        assert set(loop.seen) <= before | now  # no other process ever answered
        if wanted > len(before):
            assert before < now  # the running ones stay (same pids); the new one joins
        else:
            assert now < before  # the extra ones stopped; the one kept is the same
        before = now

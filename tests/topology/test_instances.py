"""`ps`, `status`, `scale` and `restart` across hosts: two API replicas and a worker in their
own network namespaces, PostgreSQL: the same answer from either replica, requests through
either replica's router spread over the worker's instances, and a worker that stopped is
said plainly."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from typing import Any

import pytest

from conftest import HANG_GUARD_SECS, Topology, app_folder, wait_for

pytestmark = pytest.mark.timeout(HANG_GUARD_SECS)

# The fixture app answers {"deployment_id", "version"}: make its version name its port.
BY_PORT = 'process.env.APP_VERSION = "port-" + process.env.PORT;\n'


def as_json(done: Any) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ps(top: Topology, host: str) -> dict[str, Any]:
    return as_json(top.client(host, "ps", "web", "--format", "json"))


def status_of(top: Topology, host: str) -> dict[str, Any]:
    """What ``ps`` shows, straight from the API: for polling (a CLI start costs a second of
    CPU on a loaded machine); each test compares the CLI's own answers once it holds."""
    answer: dict[str, Any] = top.get(host, "/apps/web/status").json()
    return answer


def healthy(top: Topology, count: int) -> bool:
    items = status_of(top, "api1")["instances"]
    return len(items) == count and all(i["health"] == "healthy" for i in items)


def running(status: dict[str, Any]) -> set[tuple[str, str]]:
    """Each instance's id and start time: the same while its process runs."""
    return {(i["id"], i["started_at"]) for i in status["instances"]}


def web_running(top: Topology) -> subprocess.Popen[bytes]:
    """A worker, and the app ``web`` deployed through api1 with one healthy instance."""
    worker = top.start_worker()
    folder = app_folder(top.root, "web")
    server = folder / "server.js"
    server.write_text(BY_PORT + server.read_text())
    as_json(top.client("api1", "deploy", str(folder), "--format", "json"))
    wait_for(lambda: healthy(top, 1), what="one healthy instance")
    return worker


def test_ps_scale_and_restart_are_the_same_from_either_replica(topology: Topology) -> None:
    worker = web_running(topology)
    one = running(ps(topology, "api1"))
    scaled = as_json(topology.client("api2", "scale", "web", "2", "--format", "json"))
    assert scaled["status"] == "running" and scaled["replicas"] == 2
    wait_for(lambda: healthy(topology, 2), what="two healthy instances")
    first, second = ps(topology, "api1"), ps(topology, "api2")
    assert first == second
    assert one < running(first)  # the scale started one more; the first one runs on
    assert {i["worker"] for i in first["instances"]} == {
        topology.get("api1", "/workers").json()["workers"][0]["id"]
    }
    for host in ("api1", "api2"):  # each replica's router reaches both instances on the worker
        seen = {topology.via_proxy(host, "web").json()["version"] for _ in range(12)}
        assert len(seen) == 2, seen

    restarted = as_json(topology.client("api1", "restart", "web", "--format", "json"))
    assert restarted["reason"] == "restart" and restarted["status"] == "running"
    status = as_json(topology.client("api2", "status", "web", "--format", "json"))
    assert status["last_rollout"]["id"] == restarted["id"]
    history = [
        as_json(topology.client(host, "releases", "web", "--format", "json"))["releases"]
        for host in ("api1", "api2")
    ]
    assert history[0] == history[1]
    assert [r["kind"] for r in history[0]] == ["scale", "deploy"]
    assert [r["deployment_id"] for r in history[0][0]["restarted"]] == [restarted["id"]]

    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)

    def said_plainly(answers: list[dict[str, Any]]) -> bool:
        return all(not a["live"] and "no live worker" in a["message"] for a in answers)

    wait_for(
        lambda: said_plainly([status_of(topology, host)["worker"] for host in ("api1", "api2")]),
        timeout=30,
        what="no live worker said by both replicas",
    )
    assert said_plainly([ps(topology, host)["worker"] for host in ("api1", "api2")])
    text = topology.client("api1", "status", "web")
    assert "warning: no live worker for runtime local" in text.stdout, text.stdout
    assert {i["state"] for i in ps(topology, "api2")["instances"]} == {"unknown"}
    assert topology.via_proxy("api2", "web").status_code == 200  # the apps outlive the worker
    topology.start_worker("worker-2")  # adopts them; stops them at the test's end
    wait_for(lambda: status_of(topology, "api1")["worker"]["live"], what="a live worker again")
    assert ps(topology, "api1")["worker"]["live"]


def test_a_scale_through_either_replica_fails_no_request(topology: Topology) -> None:
    web_running(topology)
    before = running(ps(topology, "api2"))
    failures: list[str] = []
    stop = threading.Event()

    def requests_through(host: str) -> None:
        while not stop.is_set():
            try:
                answer = topology.via_proxy(host, "web")
                if answer.status_code != 200:
                    failures.append(f"{host}: {answer.status_code} {answer.text[:200]}")
            except OSError as exc:
                failures.append(f"{host}: {exc}")

    loops = [threading.Thread(target=requests_through, args=(h,)) for h in ("api1", "api2")]
    for loop in loops:
        loop.start()
    try:
        for count, host in ((3, "api2"), (1, "api1")):
            as_json(topology.client(host, "scale", "web", str(count), "--format", "json"))
            wait_for(lambda n=count: healthy(topology, n), what=f"{count} healthy instances")
            now = running(ps(topology, "api1"))
            assert before <= now if count > len(before) else now <= before, (before, now)
            before = now
    finally:
        stop.set()
        for loop in loops:
            loop.join()
    assert failures == []

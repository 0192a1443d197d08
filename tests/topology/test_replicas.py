"""Two API replicas and a worker on separate hosts (network namespaces), PostgreSQL + S3, the
local runtime: the same logs and workers from either replica, a follow that moves to the
other replica mid-stream, and a worker killed with -9 while requests flow."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest
import requests

from conftest import HANG_GUARD_SECS, Topology, app_folder, wait_for

pytestmark = pytest.mark.timeout(HANG_GUARD_SECS)


def deploy(top: Topology, name: str) -> dict[str, object]:
    done = top.client("api1", "deploy", str(app_folder(top.root, name)), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr + top.log("worker")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def log_lines(top: Topology, host: str, app: str, *args: str) -> list[dict[str, str]]:
    done = top.client(host, "logs", app, "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line]


def test_logs_and_workers_are_the_same_from_both_replicas(topology: Topology) -> None:
    topology.start_worker()
    deploy(topology, "web")
    worker_addr = topology.network.hosts["wrk"]
    for host in ("api1", "api2"):  # each replica proxies across hosts to the worker's address
        answer = topology.via_proxy(host, "web", f"/hello-from-{host}")
        assert answer.status_code == 200, answer.text
    wait_for(
        lambda: (
            len([x for x in log_lines(topology, "api2", "web") if "hello-from" in x["line"]]) == 2
        ),
        what="both requests' lines shipped",
    )
    first = log_lines(topology, "api1", "web")
    assert first == log_lines(topology, "api2", "web")
    assert [x["line"] for x in log_lines(topology, "api2", "web", "--tail", "2")] == [
        x["line"] for x in first[-2:]
    ]
    assert {x["instance"] for x in first if x["stream"] != "notice"} != {""}
    workers: list[dict[str, Any]] = []

    def both_list_the_app() -> bool:
        workers[:] = [
            json.loads(topology.client(h, "workers", "--format", "json").stdout)
            for h in ("api1", "api2")
        ]
        for answer in workers:  # a heartbeat may land between the two calls
            for worker in answer["workers"]:
                assert worker.pop("last_seen")
        # the app appears in the worker's row with its next heartbeat after the deploy
        return workers[0] == workers[1] and all(
            [w["apps"] for w in answer["workers"]] == [["web"]] for answer in workers
        )

    wait_for(both_list_the_app, what="both replicas list the worker holding the app")
    (worker,) = workers[0]["workers"]
    assert worker["alive"] and worker["runtime"] == "local" and worker["apps"] == ["web"]
    assert worker["advertise_addr"] == worker_addr
    endpoint = topology.get("api1", "/apps/web/deployments").json()["deployments"][0]["endpoint"]
    assert endpoint.startswith(f"http://{worker_addr}:")


def test_a_follow_that_moves_to_the_other_replica_loses_and_repeats_nothing(
    topology: Topology,
) -> None:
    topology.start_worker()
    deploy(topology, "chat")
    stop = threading.Event()
    sent: list[str] = []

    def talk() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            path = f"/msg-{number}"
            if topology.via_proxy("api1", "chat", path).status_code == 200:
                sent.append(path)
            time.sleep(0.01)

    talker = threading.Thread(target=talk)
    talker.start()
    seen: list[dict[str, str]] = []
    try:
        with topology.get("api1", "/apps/chat/logs?follow=true", stream=True) as first:
            for raw in first.iter_lines():
                seen.append(json.loads(raw))
                if sum("msg-" in x["line"] for x in seen) >= 20:
                    break  # the client leaves replica 1 mid-stream …
        cursor = next(x["cursor"] for x in reversed(seen) if x["cursor"])
        params = {"follow": "true", "cursor": cursor}
        with topology.get("api2", "/apps/chat/logs", params=params, stream=True) as second:
            for raw in second.iter_lines():  # … and resumes on replica 2
                seen.append(json.loads(raw))
                if sum("msg-" in x["line"] for x in seen) >= 60:
                    break
    finally:
        stop.set()
        talker.join(10)
    # notices (e.g. "no output stored yet" when the follow starts first) carry no cursor
    cursors = [int(x["cursor"]) for x in seen if x["cursor"]]
    assert cursors == list(range(cursors[0], cursors[0] + len(cursors)))  # no gap, no repeat
    messages = [x["line"].split()[-1] for x in seen if "msg-" in x["line"]]
    assert messages == sent[: len(messages)]


def test_killing_the_worker_fails_no_request(topology: Topology) -> None:
    worker = topology.start_worker()
    deploy(topology, "steady")
    stop = threading.Event()
    results: list[int | str] = []

    def hammer(host: str) -> None:
        while not stop.is_set():
            try:
                results.append(topology.via_proxy(host, "steady", "/ping").status_code)
            except requests.RequestException as exc:
                results.append(type(exc).__name__)

    threads = [threading.Thread(target=hammer, args=(host,)) for host in ("api1", "api2")]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(results) > 50, what="requests flowing")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        killed_at = len(results)

        def worker_gone() -> bool:
            body = topology.get("api2", "/workers").json()
            return not body["live"]

        wait_for(worker_gone, timeout=30, what="the killed worker shown as gone")
        wait_for(lambda: len(results) > killed_at + 100, what="requests after the kill")
        restarted = topology.start_worker("worker-2")  # the same data dir: it adopts the app
        wait_for(lambda: topology.get("api1", "/workers").json()["live"], what="a live worker")
        wait_for(lambda: len(results) > killed_at + 200, what="requests after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    failures = [r for r in results if r != 200]
    assert not failures, failures[:10]
    assert restarted.poll() is None
    assert "adopted steady" in topology.log("worker-2")


def test_another_host_takes_over_a_killed_workers_app_within_seconds(topology: Topology) -> None:
    """Worker A dies (kill -9); worker B on another host runs the app within seconds of A's
    heartbeat running out — not after the 30 s lease — and requests keep succeeding."""
    first = topology.start_worker("worker-a", "wrk")
    deploy(topology, "moving")
    second = topology.start_worker("worker-b", "wrk2")
    wait_for(lambda: len(topology.get("api1", "/workers").json()["workers"]) == 2, what="B")
    stop = threading.Event()
    results: list[int | str] = []

    def hammer() -> None:
        while not stop.is_set():
            try:
                results.append(topology.via_proxy("api2", "moving", "/ping").status_code)
            except requests.RequestException as exc:
                results.append(type(exc).__name__)

    thread = threading.Thread(target=hammer)
    thread.start()
    b_addr = topology.network.hosts["wrk2"]

    def endpoint() -> str:
        page = topology.get("api1", "/apps/moving/deployments").json()["deployments"]
        return str(next(d["endpoint"] for d in page if d["status"] == "running"))

    try:
        wait_for(lambda: len(results) > 20, what="requests flowing")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed = time.monotonic()
        wait_for(lambda: endpoint().startswith(f"http://{b_addr}:"), timeout=60, what="takeover")
        took = time.monotonic() - killed
        wait_for(lambda: len(results) > 50, what="requests after the takeover")
    finally:
        stop.set()
        thread.join(15)
    assert took < 25, f"takeover took {took:.1f}s (the lease is 30 s)"
    failures = [r for r in results if r != 200]
    assert not failures, failures[:10]
    assert second.poll() is None

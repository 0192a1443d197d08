"""Two ``aether worker`` processes on one PostgreSQL database: every app is rolled out by
exactly one of them, and each app answers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import api_get, app_copy, deploy, via_proxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_two_workers_on_postgres_roll_out_each_app_once(
    live_server: Callable[..., Any], fresh_postgres_url: str, tmp_path: Path
) -> None:
    server = live_server(database_url=fresh_postgres_url, args=["--no-worker"])
    workers = []
    for index in range(2):
        with (tmp_path / f"worker-{index}.log").open("wb") as log:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "aether", "worker", "--data-dir", str(server.data_dir)],
                    env={**server.server_env, "AETHER_WORKER_LEASE_SECS": "5"},
                    stdout=log,
                    stderr=log,
                )  # fmt: skip
            )
    try:
        results = {}
        for name in ("one", "two", "three"):
            code, result = deploy(server.env, app_copy(tmp_path, name, "1.0.0"))
            assert code == 0, result
            results[name] = result
        for name, result in results.items():
            events = api_get(server, f"/deployments/{result['deployment_id']}/events")["events"]
            phases = [event["phase"] for event in events]
            assert phases.count("deploying") == 1 and phases.count("starting") == 1, phases
            status, body = via_proxy(server.port, name)
            assert status == 200 and json.loads(body)["deployment_id"] == result["deployment_id"]
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=30) for worker in workers]
    assert codes == [0, 0]

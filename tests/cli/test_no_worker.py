"""With no live worker: ``aether deploy`` says so within seconds instead of blaming the
deployment at its timeout, the deployment stays visible as pending, ``aether deploy --cancel``
stops it, and ``aether workers`` says that no worker is alive."""

from __future__ import annotations

import json
import time
from pathlib import Path

from client_support import aether, aether_json, copy_app


def test_a_deploy_without_a_worker_says_so_and_can_be_cancelled(
    live_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = live_server(args=["--no-worker"])
    started = time.monotonic()
    done = aether(server.env, "deploy", str(copy_app(tmp_path / "app")), "--timeout", "8")
    assert done.returncode == 20, done.stdout + done.stderr
    assert (
        "waiting: no live worker for runtime local — the deployment will start when one is"
        in done.stderr
    )
    assert time.monotonic() - started < 120
    assert "stays pending" in done.stderr and "aether deploy --cancel" in done.stderr
    deployment_id = done.stderr.split("aether deploy --cancel ")[1].split("`")[0]

    listed = aether_json(server.env, "list", "--app", "tiny-node-app")
    assert [d["status"] for d in listed["deployments"]] == ["pending"]
    cancelled = aether_json(server.env, "deploy", "--cancel", deployment_id)
    assert cancelled["status"] == "failed" and "cancelled by" in cancelled["failure_reason"]
    again = aether(server.env, "deploy", "--cancel", deployment_id, "--format", "json")
    assert again.returncode != 0
    assert json.loads(again.stdout)["error"]["code"] == "conflict"

    workers = aether(server.env, "workers")
    assert workers.returncode == 0
    assert "no live worker for runtime local" in workers.stdout

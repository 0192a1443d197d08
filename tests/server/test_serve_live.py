"""A real ``aether serve`` process: first start, bootstrap tokens, PostgreSQL, signals."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from aether.store.migrate import available


def _api(server, method, path, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token or server.admin_token}"}
    return requests.request(method, server.url + path, headers=headers, timeout=10, **kwargs)


def test_first_start_prints_an_admin_token_once_and_writes_the_session(live_server):
    server = live_server(bootstrap_token=False, args=["--no-worker"])
    session_file = Path(server.env["XDG_CACHE_HOME"]) / "aether" / "session.json"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    session = json.loads(session_file.read_text())
    assert session["api_base"] == server.url
    assert _api(server, "GET", "/whoami").json()["role"] == "admin"
    assert server.stop() == 0
    log = server.log_text()
    assert f"Aether API listening on {server.url}" in log
    assert log.count(server.admin_token) == 1  # printed once, never logged
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert all(server.admin_token not in json.dumps(entry) for entry in entries)
    access = [e for e in entries if e["logger"] == "aether.access" and e["path"] == "/whoami"]
    assert access and len(access[0]["request_id"]) >= 16 and access[0]["status"] == 200


def test_restart_keeps_tokens_and_prints_no_new_one(live_server, tmp_path):
    first = live_server(bootstrap_token=False)
    first.stop()
    command = [
        sys.executable,
        "-m",
        "aether",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(first.data_dir),
    ]
    again = subprocess.Popen(
        command, env=first.server_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        line = again.stdout.readline().decode()
        while "listening on" not in line:
            assert line, "server exited before listening"
            line = again.stdout.readline().decode()
    finally:
        again.terminate()
        rest = again.communicate(timeout=20)[0].decode()
    assert "admin token" not in line + rest
    assert again.returncode == 0
    port = int(line.rsplit(":", 1)[1])
    assert port > 0  # --port 0: the banner names the port actually bound


def test_bootstrap_tokens_with_roles(live_server):
    server = live_server(
        env={"AETHER_API_TOKENS": "reader-secret-1:reader:ops,deploy-secret-2:deployer"}
    )
    assert _api(server, "GET", "/whoami", token="reader-secret-1").json()["name"] == "ops"
    assert _api(server, "GET", "/whoami", token="deploy-secret-2").json()["role"] == "deployer"
    assert (
        _api(server, "POST", "/apps", token="reader-secret-1", json={"name": "x"}).status_code
        == 403
    )


@pytest.mark.postgres
def test_serve_on_postgres(live_server, fresh_postgres_url):
    server = live_server(database_url=fresh_postgres_url)
    ready = requests.get(server.url + "/readyz", timeout=5).json()
    assert ready["database"] == "postgresql"
    assert _api(server, "POST", "/apps", json={"name": "pg-app"}).status_code == 201
    assert server.stop() == 0


def test_sigterm_ends_follow_streams_and_exits_cleanly(live_server):
    server = live_server(args=["--no-worker"], env={"AETHER_SHUTDOWN_GRACE_SECS": "5"})
    app = _api(server, "POST", "/apps", json={"name": "shop"}).json()
    deployment_id = _seed_pending_deployment(server, app["id"])
    lines: list[bytes] = []
    response = _api(server, "GET", f"/deployments/{deployment_id}/events?follow=true", stream=True)
    first = next(response.iter_lines())
    reader = threading.Thread(target=lambda: lines.extend(response.iter_lines()), daemon=True)
    reader.start()
    assert json.loads(first)["phase"] == "pending"
    assert server.stop() == 0
    reader.join(timeout=10)
    assert not reader.is_alive()


def _seed_pending_deployment(server, app_id: str) -> str:
    """Insert a stored artifact (and the app's reference) and create a deployment through the
    API."""
    import sqlite3

    digest = "ab" * 32
    with sqlite3.connect(server.data_dir / "aether.db") as conn:
        conn.execute(
            "INSERT INTO artifacts (id, app_id, digest, size_bytes, status, storage_key,"
            " created_at) VALUES ('art-1', ?, ?, 10, 'stored', 'k', '2026-01-01T00:00:00Z')",
            (app_id, digest),
        )
        conn.execute(  # uploaded for this app: it holds the digest
            "INSERT INTO artifact_references (digest, app_id, created_at)"
            " VALUES (?, ?, '2026-01-01T00:00:00Z')",
            (digest, app_id),
        )
    response = _api(
        server, "POST", "/deployments", json={"app_name": "shop", "artifact_digest": digest}
    )
    assert response.status_code == 201
    return response.json()["id"]


def test_cli_migrate_and_token_commands(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "DATABASE_URL"))}
    base = [sys.executable, "-m", "aether"]
    data = ["--data-dir", str(tmp_path / "data")]
    early = subprocess.run([*base, "token", "list", *data], env=env, capture_output=True, text=True)
    assert early.returncode == 10 and "aether migrate" in early.stderr
    applied = subprocess.run(
        [*base, "migrate", *data, "--format", "json"], env=env, capture_output=True, text=True
    )
    every = [f"{m.version:04d}_{m.name}" for m in available()]
    assert json.loads(applied.stdout)["applied"] == every
    created = subprocess.run(
        [*base, "token", "create", "--name", "ci", "--role", "reader", *data, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    token_id = json.loads(created.stdout)["token_id"]
    listed = subprocess.run(
        [*base, "token", "list", *data, "--format", "json"], env=env, capture_output=True, text=True
    )
    assert [t["id"] for t in json.loads(listed.stdout)["tokens"]] == [token_id]
    revoked = subprocess.run(
        [*base, "token", "revoke", token_id, *data], env=env, capture_output=True, text=True
    )
    assert revoked.returncode == 0
    listed = subprocess.run(
        [*base, "token", "list", *data, "--format", "json"], env=env, capture_output=True, text=True
    )
    assert json.loads(listed.stdout)["tokens"] == []


def test_port_zero_prints_the_real_port_and_a_busy_port_is_a_clear_error(live_server):
    server = live_server(args=["--no-worker"])
    command = [sys.executable, "-m", "aether", "serve", "--no-worker", "--data-dir"]
    busy = subprocess.run(
        [*command, str(server.data_dir), "--port", str(server.port)],
        env=server.server_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert busy.returncode == 10
    assert f"cannot listen on 127.0.0.1:{server.port}" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_no_migrate_on_an_empty_database_names_the_remedy(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "DATABASE_URL"))}
    command = [sys.executable, "-m", "aether", "serve", "--no-migrate", "--port", "0"]
    result = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "data")],
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 10
    assert "aether migrate" in result.stderr


def test_follow_streams_new_events_and_ends_at_a_terminal_status(live_server):
    import sqlite3

    server = live_server(args=["--no-worker"])
    app = _api(server, "POST", "/apps", json={"name": "shop"}).json()
    deployment_id = _seed_pending_deployment(server, app["id"])
    response = _api(server, "GET", f"/deployments/{deployment_id}/events?follow=true", stream=True)
    lines = response.iter_lines()
    assert json.loads(next(lines))["phase"] == "pending"
    with sqlite3.connect(server.data_dir / "aether.db") as conn:
        conn.execute(
            "INSERT INTO deployment_events (deployment_id, phase, message, timestamp)"
            " VALUES (?, 'running', 'healthy', '2026-01-01T00:00:01Z')",
            (deployment_id,),
        )
        conn.execute("UPDATE deployments SET status = 'running' WHERE id = ?", (deployment_id,))
    rest = [json.loads(line) for line in lines]  # ends by itself once the status is terminal
    assert [event["phase"] for event in rest] == ["running"]


def test_a_follow_the_client_leaves_is_not_an_error(live_server):
    """Clients of ``logs -f`` that disconnect end their stream quietly: no ERROR, no
    traceback in the server log, only the access line."""
    server = live_server(args=["--no-worker"])
    assert _api(server, "POST", "/apps", json={"name": "quiet"}).status_code == 201
    for _ in range(3):
        with requests.get(
            server.url + "/apps/quiet/logs?follow=true",
            headers={"Authorization": f"Bearer {server.admin_token}"},
            stream=True,
            timeout=10,
        ) as response:
            first = json.loads(next(response.iter_lines()))
            assert first["stream"] == "notice"  # nothing stored yet: said, not silent
    deadline = time.monotonic() + 20
    while server.log_text().count('"/apps/quiet/logs"') < 3:
        assert time.monotonic() < deadline, server.log_text()[-2000:]
        time.sleep(0.05)
    assert server.stop() == 0
    log = server.log_text()
    assert '"level": "error"' not in log and "Traceback" not in log, log[-3000:]

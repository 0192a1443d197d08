"""`aether deploy`, `list` and `rollback` against a real `aether serve` (worker off).

Without a worker nothing moves a deployment forward, so the tests play the worker's part
through the server's own database (``aether.store.deployments``), which is what a worker
would write. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from client_support import aether, aether_json, copy_app, without
from deploy_support import advance, api_get, wait_for_deployment


@pytest.fixture
def server(live_server):  # type: ignore[no-untyped-def]
    return live_server(args=["--no-worker"])


@pytest.fixture
def any_server(live_server, backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A server on each metadata backend (SQLite and PostgreSQL)."""
    url = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else None
    return live_server(args=["--no-worker"], database_url=url)


def test_dry_run_reports_the_real_digest_and_changes_nothing(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_dir = copy_app(tmp_path / "app")
    packed = aether_json(server.env, "deploy", str(app_dir), "--pack-only")
    dry = aether_json(server.env, "deploy", str(app_dir), "--dry-run")
    assert dry["digest"] == packed["digest"] and len(dry["digest"]) == 64
    assert dry["dry_run"] is True and dry["would_upload"] is True
    assert dry["app"] == "tiny-node-app" and dry["deployment_id"] is None
    assert aether_json(server.env, "list")["apps"] == []


def test_deploy_skip_and_list(any_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = any_server
    app_dir = copy_app(tmp_path / "app", name="@acme/Tiny_App")
    first = aether_json(
        server.env,
        "deploy",
        str(app_dir),
        "--no-wait",
        "--env",
        "GREETING=a=b",
        "--start-command",
        "node server.js",
    )
    assert first["app"] == "acme-tiny-app" and first["status"] == "pending"
    assert first["skipped_upload"] is False and first["sbom_upload"]["uploaded"] is True
    # Everything sent: the artifact (its layers and manifest) and the SBOM beside it.
    sbom_bytes = first["sbom_upload"]["uploaded_bytes"]
    assert sbom_bytes > 0 and first["uploaded_bytes"] == first["size_bytes"] + sbom_bytes
    assert set(first["timings_ms"]) >= {"install", "pack", "upload", "register", "rollout", "total"}

    assert first["release"] == 1 and first["one_off_env"] == ["GREETING"]
    # The same code without the one-off --env is another release, and says what it dropped.
    second = aether_json(
        server.env, "deploy", str(app_dir), "--no-wait", "--start-command", "node server.js"
    )
    assert second["digest"] == first["digest"]
    assert second["skipped_upload"] is True and second["uploaded_bytes"] == 0
    assert second["release"] == 2 and second["dropped_overrides"] == ["GREETING"]
    third = aether_json(
        server.env, "deploy", str(app_dir), "--no-wait", "--start-command", "node server.js"
    )
    assert third["unchanged"] is True and third["deployment_id"] == second["deployment_id"]

    latest, registered = aether_json(server.env, "list", "--app", "acme-tiny-app")["deployments"]
    assert list(registered["env"]) == ["GREETING"] and registered["env"]["GREETING"] != "a=b"
    assert registered["start_command"] == "node server.js" and latest["env"] == {}

    listing = aether_json(server.env, "list")
    (app,) = listing["apps"]
    assert app["name"] == "acme-tiny-app"
    assert app["current"]["artifact_digest"] == first["digest"]
    table = aether(server.env, "list")
    assert table.returncode == 0 and "acme-tiny-app" in table.stdout
    assert first["digest"][:12] in table.stdout


def test_deploy_follows_until_running_and_prints_the_url(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_dir = copy_app(tmp_path / "app")
    command = [sys.executable, "-m", "aether", "deploy", str(app_dir), "--format", "json"]
    with subprocess.Popen(
        command, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deployment = wait_for_deployment(server, "tiny-node-app")
        advance(server, deployment["id"], "deploying", event=("starting", "node server.js"))
        advance(
            server,
            deployment["id"],
            "running",
            event=("running", "healthy"),
            endpoint="http://127.0.0.1:1",
        )
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "running" and result["deployment_id"] == deployment["id"]
    assert result["url"] and "tiny-node-app" in result["url"]
    assert "starting: node server.js" in err and "running: healthy" in err
    # The final report went as the `running` event came: the rollout and total end there,
    # the same figures the command printed.
    report = api_get(server, f"/deployments/{deployment['id']}/report")
    assert report["final"] is True
    timings = report["timings_ms"]
    assert 0 < timings["rollout"] <= timings["total"]
    assert (timings["rollout"], timings["total"]) == (
        result["timings_ms"]["rollout"],
        result["timings_ms"]["total"],
    )


def test_failed_rollout_exits_20_with_the_reason(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_dir = copy_app(tmp_path / "app")
    command = [sys.executable, "-m", "aether", "deploy", str(app_dir)]
    with subprocess.Popen(
        command, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deployment = wait_for_deployment(server, "tiny-node-app")
        advance(server, deployment["id"], "failed", failure_reason="health check timed out")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 20
    assert "health check timed out" in err and out == ""


def test_rollback_redeploys_the_previous_release(any_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = any_server
    v1 = aether_json(server.env, "deploy", str(copy_app(tmp_path / "v1")), "--no-wait")
    advance(server, v1["deployment_id"], "running")
    v2 = aether_json(
        server.env, "deploy", str(copy_app(tmp_path / "v2", version="2.0.0")), "--no-wait"
    )
    assert v2["digest"] != v1["digest"]
    advance(server, v1["deployment_id"], "superseded")
    advance(server, v2["deployment_id"], "running")
    rolled = aether_json(server.env, "rollback", "--app", "tiny-node-app", "--no-wait")
    assert rolled["artifact_digest"] == v1["digest"] and rolled["id"] not in (
        v1["deployment_id"],
        v2["deployment_id"],
    )
    history = aether_json(server.env, "list", "--app", "tiny-node-app", "--limit", "5")
    assert [d["id"] for d in history["deployments"]][0] == rolled["id"]
    forward = aether_json(
        server.env, "rollback", "--app", "tiny-node-app", "--to", v2["deployment_id"], "--no-wait"
    )
    assert forward["artifact_digest"] == v2["digest"]


def test_unknown_app_and_json_failures(server) -> None:  # type: ignore[no-untyped-def]
    result = aether(server.env, "list", "--app", "no-such-app", "--format", "json")
    assert result.returncode == 20
    assert json.loads(result.stdout)["error"]["code"] == "not_found"
    assert result.stdout.count("\n") == 1
    text = aether(server.env, "rollback", "--app", "no-such-app")
    assert text.returncode == 20 and "not_found" in text.stderr


def test_deploy_with_a_bad_token_says_to_log_in(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {**without(server.env, "AETHER_TOKEN"), "AETHER_TOKEN": "ae_not_a_token"}
    result = aether(env, "deploy", str(copy_app(tmp_path / "app")), "--format", "json")
    assert result.returncode == 10
    assert json.loads(result.stdout)["error"]["code"] == "unauthorized"
    assert "aether login" in json.loads(result.stdout)["error"]["message"]


def test_deploy_to_a_server_that_is_down_fails_before_packing(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_dir = copy_app(tmp_path / "app")
    server.stop()
    result = aether(server.env, "deploy", str(app_dir))
    assert result.returncode == 40
    assert f"{server.url}/config" in result.stderr
    assert not (app_dir / ".aether").exists(), "nothing was packed"


def test_the_same_bytes_promote_to_another_app_without_a_new_upload(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_dir = copy_app(tmp_path / "app")
    staging = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--app", "staging")
    production = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--app", "prod")
    assert production["digest"] == staging["digest"]
    assert production["skipped_upload"] is True and production["uploaded_bytes"] == 0
    assert production["app"] == "prod" and production["deployment_id"] != staging["deployment_id"]


def test_a_rollout_that_never_finishes_times_out_with_exit_20(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aether(server.env, "deploy", str(copy_app(tmp_path / "app")), "--timeout", "1")
    assert result.returncode == 20
    assert "still pending after 1 s" in result.stderr
    # no worker takes it here: it stays pending, and the message says how to stop it
    assert "aether deploy --cancel " in result.stderr

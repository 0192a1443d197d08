"""``aether fetch --api`` against a live control plane with a deployment-scoped pull token, as
the Kubernetes init container runs it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import api_post, app_copy, deploy

from aether.store import open_database
from aether.store.tokens import create_pull_token
from plugins.older_artifacts import record_tar_sha256

pytestmark = pytest.mark.slow


async def _pull_token(data_dir: Path, deployment_id: str) -> str:
    db = open_database(None, data_dir)
    await db.open()
    try:
        return await create_pull_token(db, deployment_id=deployment_id, ttl_secs=600)
    finally:
        await db.close()


def test_fetch_with_a_pull_token_verifies_and_extracts(
    live_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = live_server()
    # aether fetch serves the Kubernetes runtime, which deploys single-file artifacts
    folder = app_copy(tmp_path, "hello", "1.0.0")
    code, result = deploy(server.env, folder, "--no-wait", "--single-file")
    assert code == 0, result
    token_file = tmp_path / "token"
    token_file.write_text(asyncio.run(_pull_token(server.data_dir, result["deployment_id"])))
    dest = tmp_path / "app"
    base = [sys.executable, "-m", "aether", "fetch", "--api", server.url, "--format", "json"]
    done = subprocess.run(
        [*base, "--deployment", result["deployment_id"], "--token-file", str(token_file),
         "--dest", str(dest)],
        capture_output=True, text=True, timeout=60, check=False, env=server.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout)["digest"] == result["digest"]
    assert (dest / "server.js").is_file()
    marker = json.loads((dest / ".aether" / "deployment.json").read_text())
    assert marker == {"digest": result["digest"], "deployment_id": result["deployment_id"]}

    wrong = subprocess.run(
        [*base, "--deployment", result["deployment_id"], "--token-file", str(token_file),
         "--digest", "0" * 64, "--dest", str(tmp_path / "wrong")],
        capture_output=True, text=True, timeout=60, check=False, env=server.env,
    )  # fmt: skip
    assert wrong.returncode == 20
    assert not (tmp_path / "wrong").exists()


@pytest.mark.parametrize("existing_dest", [False, True])
def test_fetch_of_a_layered_artifact_fetches_and_checks_every_layer(
    live_server: Callable[..., Any], tmp_path: Path, existing_dest: bool
) -> None:
    server = live_server(args=["--no-worker"])
    folder = app_copy(tmp_path, "hello", "1.0.0")
    module = folder / "node_modules" / "dep"
    module.mkdir(parents=True)
    (module / "index.js").write_text("module.exports = 1;\n")
    code, result = deploy(server.env, folder, "--no-wait", "--no-install", "--layered")
    assert code == 0, result
    assert [layer["name"] for layer in result["layers"]] == ["deps", "app"]
    token_file = tmp_path / "token"
    token_file.write_text(asyncio.run(_pull_token(server.data_dir, result["deployment_id"])))
    dest = tmp_path / "app"
    if existing_dest:
        dest.mkdir()  # an init container's empty volume mount
    done = subprocess.run(
        [sys.executable, "-m", "aether", "fetch", "--api", server.url, "--format", "json",
         "--deployment", result["deployment_id"], "--token-file", str(token_file),
         "--dest", str(dest)],
        capture_output=True, text=True, timeout=60, check=False, env=server.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    fetched = json.loads(done.stdout)
    assert fetched["digest"] == result["digest"]
    assert fetched["size_bytes"] == result["size_bytes"]
    assert (dest / "server.js").is_file() and (dest / "node_modules" / "dep" / "index.js").is_file()
    assert not (dest / "node_modules").is_symlink()
    assert sorted(p.name for p in dest.iterdir() if p.name.startswith(".")) == [".aether"]


def test_fetch_of_a_layered_artifact_recording_tar_sha256(
    live_server: Callable[..., Any], tmp_path: Path
) -> None:
    """The init container fetches an artifact an earlier build packed (each layer's
    tar_sha256 in the manifest) as it fetches one packed now."""
    server = live_server(args=["--no-worker"])
    folder = app_copy(tmp_path, "hello", "1.0.0")
    (folder / "node_modules" / "dep").mkdir(parents=True)
    (folder / "node_modules" / "dep" / "index.js").write_text("module.exports = 1;\n")
    out = tmp_path / "out"
    code, result = deploy(server.env, folder, "--no-wait", "--no-install", "--out", str(out))
    assert code == 0, result
    manifest = out / "app.artifact.json"
    digest = record_tar_sha256(manifest)  # the same layers, stored by the deploy
    body = {"app_name": "hello", "artifact_digest": digest, "manifest": manifest.read_text()}
    earlier = api_post(server, "/deployments", body)
    token_file = tmp_path / "token"
    token_file.write_text(asyncio.run(_pull_token(server.data_dir, earlier["id"])))
    dest = tmp_path / "app"
    done = subprocess.run(
        [sys.executable, "-m", "aether", "fetch", "--api", server.url, "--format", "json",
         "--deployment", earlier["id"], "--token-file", str(token_file), "--dest", str(dest)],
        capture_output=True, text=True, timeout=60, check=False, env=server.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout)["digest"] == digest
    assert (dest / "server.js").is_file() and (dest / "node_modules" / "dep" / "index.js").is_file()

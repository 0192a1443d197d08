"""Layered artifacts end to end on the embedded default (real ``aether serve``, in-process
worker, local runtime; and on PostgreSQL with S3): the deps layer is shared by releases, a code-only redeploy ships only
the app layer, and single-file artifacts already stored still deploy and roll back beside
layered ones."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import api_post, app_copy, cli, deploy, via_proxy, wait_for

from plugins.older_artifacts import record_tar_sha256

pytestmark = pytest.mark.slow

BOOT = "const dep = require('dep'); if (dep.answer !== 42) throw new Error('deps missing');"


@pytest.fixture(params=["embedded", pytest.param("postgres-s3", marks=pytest.mark.postgres)])
def server(live_server: Callable[..., Any], request: pytest.FixtureRequest) -> Any:
    """The embedded default (SQLite, local store), or PostgreSQL with S3 (moto)."""
    env = {"AETHER_ROLLOUT_TIMEOUT_SECS": "20"}
    if request.param == "embedded":
        return live_server(env=env)
    env.update(
        AETHER_STORAGE_MODE="s3",
        AETHER_S3_ENDPOINT_URL=request.getfixturevalue("s3_endpoint"),
        AETHER_ARTIFACT_BUCKET=f"t-{uuid.uuid4().hex[:16]}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return live_server(env=env, database_url=request.getfixturevalue("fresh_postgres_url"))


def project(root: Path, version: str, line: str = "", name: str = "hello") -> Path:
    """The fixture app at ``version`` needing the ``dep`` package; ``line`` adds code."""
    folder = app_copy(root / f"copy{len(line)}", name, version, boot_js=f"{BOOT}\n{line}")
    module = folder / "node_modules" / "dep"
    module.mkdir(parents=True)
    (module / "index.js").write_text("module.exports = { answer: 42 };\n")
    (module / "package.json").write_text('{"name": "dep", "version": "1.0.0"}\n')
    return folder


def version_of(server: Any) -> str | None:
    status, body = via_proxy(server.port, "hello")
    return json.loads(body)["version"] if status == 200 else None


def test_layered_and_single_file_releases_deploy_and_roll_back(server: Any, tmp_path: Path) -> None:
    code, v1 = deploy(server.env, project(tmp_path, "1.0.0"), "--no-install", "--single-file")
    assert code == 0 and v1["status"] == "running", v1
    assert v1["format"] == 1 and version_of(server) == "1.0.0"

    code, v2 = deploy(server.env, project(tmp_path, "2.0.0"), "--no-install")
    assert code == 0 and v2["status"] == "running", v2
    assert v2["format"] == 2 and version_of(server) == "2.0.0"
    assert [layer["name"] for layer in v2["layers"]] == ["deps", "app"]
    apps_dir = server.data_dir / "apps" / "hello"
    two = apps_dir / v2["deployment_id"] / "node_modules"
    assert two.is_symlink()
    layer = two.resolve()  # read now: v2's folder goes once the next release has replaced it

    # a code-only change: the same version, one more line of code
    code, v3 = deploy(server.env, project(tmp_path, "2.0.0", "// one more line"), "--no-install")
    assert code == 0 and v3["status"] == "running", v3
    deps, app = v3["layers"]
    assert deps["uploaded"] is False and app["uploaded"] is True
    status, body = via_proxy(server.port, "hello")
    assert json.loads(body)["deployment_id"] == v3["deployment_id"]
    three = apps_dir / v3["deployment_id"] / "node_modules"
    assert three.is_symlink()
    assert three.resolve() == layer  # one extracted deps layer for both releases

    for target, version in ((v1, "1.0.0"), (v2, "2.0.0")):
        done = cli(server.env, "rollback", "--app", "hello", "--to", target["deployment_id"])
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(lambda v=version: version_of(server) == v, timeout=30, what=f"v{version}")


def deployment_of(server: Any) -> str | None:
    status, body = via_proxy(server.port, "hello")
    return json.loads(body)["deployment_id"] if status == 200 else None


def test_an_artifact_recording_tar_sha256_deploys_and_rolls_back(
    server: Any, tmp_path: Path
) -> None:
    """Earlier builds recorded each layer's tar_sha256: their artifacts, already stored,
    still register, deploy, roll back and verify beside the ones packed now."""
    out = tmp_path / "out"
    code, current = deploy(
        server.env, project(tmp_path, "1.0.0"), "--no-install", "--out", str(out)
    )
    assert code == 0 and current["status"] == "running", current
    manifest = out / "app.artifact.json"
    assert b"tar_sha256" not in manifest.read_bytes()
    digest = record_tar_sha256(manifest)  # the same layers, already stored
    assert cli(server.env, "verify", str(manifest)).returncode == 0
    body = {"app_name": "hello", "artifact_digest": digest, "manifest": manifest.read_text()}
    earlier = api_post(server, "/deployments", body)
    assert earlier["artifact_digest"] == digest
    wait_for(lambda: deployment_of(server) == earlier["id"], timeout=30, what="the earlier form")
    for target, served in ((current["deployment_id"], current["digest"]), (earlier["id"], digest)):
        done = cli(server.env, "rollback", "--app", "hello", "--to", target, "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        back = json.loads(done.stdout)
        assert back["status"] == "running" and back["artifact_digest"] == served, back
        assert deployment_of(server) == back["id"]


def test_two_apps_with_the_same_dependencies_share_one_extracted_layer(
    server: Any, tmp_path: Path
) -> None:
    """The host's layer cache: both apps' releases link the one extracted copy of their
    common deps layer (on SQLite + local store, and PostgreSQL + S3); the SBOM is uploaded."""
    one = project(tmp_path / "a", "1.0.0", name="first")
    code, first = deploy(server.env, one, "--no-install")
    assert code == 0 and first["status"] == "running", first
    assert first["sbom_upload"]["uploaded"] is True
    other = project(tmp_path / "b", "1.0.0", name="second")
    # the lockfile travels in the deps layer: the same one (as a yarn or pnpm lockfile, which
    # names no app, would be) for the same dependencies
    (other / "package-lock.json").write_bytes((one / "package-lock.json").read_bytes())
    code, second = deploy(server.env, other, "--no-install")
    assert code == 0 and second["status"] == "running", second
    assert first["layers"][0]["digest"] == second["layers"][0]["digest"]
    links = [
        server.data_dir / "apps" / app["app"] / app["deployment_id"] / "node_modules"
        for app in (first, second)
    ]
    assert all(link.is_symlink() for link in links)
    cached = server.data_dir / "layers" / first["layers"][0]["digest"] / "node_modules"
    assert {link.resolve() for link in links} == {cached.resolve()}
    for app in ("first", "second"):  # both booted: their dependency resolved
        status, _ = via_proxy(server.port, app)
        assert status == 200

"""`aether deploy` of a layered artifact against a real `aether serve` (worker off), on
SQLite and PostgreSQL: a code-only redeploy uploads and stores the app layer alone."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from client_support import aether, aether_json, copy_app

from plugins.polling import wait_for


@pytest.fixture
def any_server(live_server, backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else None
    return live_server(args=["--no-worker"], database_url=url)


def with_deps(app_dir: Path) -> Path:
    module = app_dir / "node_modules" / "big-dep"
    module.mkdir(parents=True)
    (module / "index.js").write_text("module.exports = 1;\n" * 2000)
    (module / "package.json").write_text('{"name": "big-dep", "version": "1.0.0"}\n')
    return app_dir


def test_code_only_redeploy_ships_only_the_app_layer(any_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = any_server
    app_dir = with_deps(copy_app(tmp_path / "app"))
    before = len(server.log_text())
    first = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--no-install")
    # the uploads create the app: no request of the deploy's own goes to /apps (read once
    # the server logged the deploy's last request, its report)
    report = ("PUT", f"/deployments/{first['deployment_id']}/report")
    logged = wait_for(lambda: report in (r := requests_since(server, before)) and r)
    assert not [r for r in logged if r[1].startswith("/apps")]
    assert first["format"] == 2
    assert [layer["name"] for layer in first["layers"]] == ["deps", "app"]
    assert all(layer["uploaded"] for layer in first["layers"])
    sbom = first["sbom_upload"]  # the SBOM is uploaded beside the layers
    assert sbom["uploaded"] is True and sbom["uploaded_bytes"] == sbom["size_bytes"] > 0
    assert first["uploaded_bytes"] == first["size_bytes"] + sbom["size_bytes"]

    (app_dir / "server.js").write_text((app_dir / "server.js").read_text() + "\n// v2\n")
    before = len(server.log_text())
    second = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--no-install")
    deps, app = second["layers"]
    report = ("PUT", f"/deployments/{second['deployment_id']}/report")
    # The server logs a request once it answered it: the CLI may have ended a moment before.
    requests = wait_for(lambda: report in (r := requests_since(server, before)) and r)
    # the small app layer goes up first, in one request and without a HEAD: the artifact
    # cannot be held without it, so neither its manifest nor the layer is asked about
    heads = [path.rsplit("/", 1)[1] for method, path in requests if method == "HEAD"]
    assert heads == [deps["digest"], sbom["digest"]]
    # (the server may log the first deploy's last request, its report, only now)
    earlier = f"/deployments/{first['deployment_id']}/"
    assert [r for r in requests if r[0] != "HEAD" and not r[1].startswith(earlier)] == [
        ("GET", "/config"),
        ("PUT", f"/artifacts/{app['digest']}/content"),
        ("POST", "/deployments"),  # with the manifest, which the server registers first
        report,
    ]
    assert (deps["uploaded"], deps["uploaded_bytes"]) == (False, 0)
    assert second["sbom_upload"] == {**sbom, "uploaded": False, "uploaded_bytes": 0}
    assert deps["digest"] == first["layers"][0]["digest"]
    assert app["uploaded"] is True and app["digest"] != first["layers"][1]["digest"]
    manifest_bytes = second["size_bytes"] - deps["size_bytes"] - app["size_bytes"]
    assert second["uploaded_bytes"] == app["uploaded_bytes"] + manifest_bytes
    assert second["release"] == 2
    before = len(server.log_text())
    again = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--no-install")
    assert again["skipped_upload"] is True and again["release"] == 2  # nothing changed
    # its last request is the deployment's (unchanged: no report follows)
    logged = wait_for(
        lambda: ("POST", "/deployments") in (r := requests_since(server, before)) and r
    )
    heads = [p.rsplit("/", 1)[1] for m, p in logged if m == "HEAD"]
    assert heads == [second["digest"]]  # the app layer's upload said held: is the artifact?
    assert [r for r in logged if r[0] != "HEAD"] == [
        ("GET", "/config"),
        ("PUT", f"/artifacts/{app['digest']}/content"),
        ("POST", "/deployments"),
    ]

    listing = aether_json(server.env, "list", "--app", "tiny-node-app")
    assert listing["deployments"][0]["artifact_digest"] == second["digest"]
    # the old single-file form still deploys beside it
    third = aether_json(
        server.env, "deploy", str(app_dir), "--no-wait", "--no-install", "--single-file"
    )
    assert third["format"] == 1 and third["release"] == 3
    back = aether_json(
        server.env,
        "rollback",
        "--app",
        "tiny-node-app",
        "--to",
        first["deployment_id"],
        "--no-wait",
    )
    assert back["artifact_digest"] == first["digest"]


def requests_since(server, offset: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(method, path without the query) of each API request the server logged."""
    found = []
    for line in server.log_text()[offset:].splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("logger") == "aether.access":
            found.append((entry["method"], entry["path"].split("?", 1)[0]))
    return found


def test_the_sbom_policy_is_applied_to_a_real_deploy(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = live_server(
        args=["--no-worker"],
        env={"AETHER_REQUIRE_SBOM": "1", "AETHER_SBOM_DENY_PACKAGES": "big-dep@1.0.0"},
    )
    app_dir = copy_app(tmp_path / "app")
    for flag in ("--no-sbom", "--single-file"):  # refused before anything is packed
        result = aether(server.env, "deploy", str(app_dir), "--no-wait", "--no-install", flag)
        assert result.returncode == 10 and "SBOM" in result.stderr, result.stderr
    done = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--no-install")
    assert done["sbom_upload"]["uploaded"] is True and done["release"] == 1
    shown = aether_json(server.env, "sbom", "tiny-node-app", "--out", str(tmp_path / "bom.json"))
    assert shown["release"] == "v1" and shown["sbom_sha256"] == done["sbom_upload"]["digest"]
    assert shown["document"]["bomFormat"] == "CycloneDX"
    assert json.loads((tmp_path / "bom.json").read_text()) == shown["document"]
    text = aether(server.env, "sbom", "tiny-node-app", "--release", "v1")
    assert text.returncode == 0 and "tiny-node-app v1: artifact" in text.stdout, text.stderr
    missing = aether(server.env, "sbom", "tiny-node-app", "--release", "v9")
    assert missing.returncode == 20, missing.stderr
    locked = with_deps(copy_app(tmp_path / "locked", name="locked-app"))
    lock = {
        "name": "locked-app",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "locked-app", "version": "1.0.0", "dependencies": {"big-dep": "1"}},
            "node_modules/big-dep": {"version": "1.0.0", "license": "MIT"},
        },
    }
    (locked / "package-lock.json").write_text(json.dumps(lock))
    denied = aether(
        server.env, "deploy", str(locked), "--no-wait", "--no-install", "--format", "json"
    )
    error = json.loads(denied.stdout)["error"]
    assert denied.returncode == 20 and "big-dep@1.0.0 is denied" in error["message"], error


HELLO_NODE = Path(__file__).resolve().parents[2] / "examples" / "hello-node"


def layer_paths(deployed: dict, digest: str) -> set[str]:  # type: ignore[type-arg]
    """The members of a deployed layer, from its file index beside the artifact."""
    index = Path(deployed["artifact"]).parent / "layers" / f"{digest}.tar.zst.manifest.json"
    return {entry["path"] for entry in json.loads(index.read_text())["files"]}


def test_hello_node_redeploys_store_what_changed(any_server, live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real staged build: a code-only redeploy stores the app layer alone (no lockfile in
    it, ≤ 1 % of the artifact); a lockfile change ships a new deps layer."""
    server = any_server
    app_dir = tmp_path / "hello-node"
    shutil.copytree(HELLO_NODE, app_dir, ignore=shutil.ignore_patterns("node_modules", ".aether"))
    first = aether_json(server.env, "deploy", str(app_dir), "--no-wait")
    assert [layer["name"] for layer in first["layers"]] == ["deps", "app"]

    (app_dir / "server.js").write_text((app_dir / "server.js").read_text() + "\n// v2\n")
    before = len(server.log_text())
    second = aether_json(server.env, "deploy", str(app_dir), "--no-wait")
    deps, app = second["layers"]
    assert (deps["uploaded"], app["uploaded"]) == (False, True)
    # the cached deps layer went up with the first deploy: not asked about again
    logged = wait_for(
        lambda: ("POST", "/deployments") in (r := requests_since(server, before)) and r
    )
    # nor the SBOM made from the same lockfile: the deployment's registration checks both
    assert [path for method, path in logged if method == "HEAD"] == []
    assert second["sbom_upload"]["uploaded"] is False

    # Another control plane lacks that layer: the registration's 409 has it uploaded after all.
    elsewhere = live_server(args=["--no-worker"])
    env = {**server.env, "AETHER_API_BASE": elsewhere.url, "AETHER_TOKEN": elsewhere.admin_token}
    other = aether_json(env, "deploy", str(app_dir), "--no-wait")
    assert other["layers"][0]["digest"] == deps["digest"]
    assert other["layers"][0]["uploaded"] is True and other["release"] == 1
    assert other["layers"][1]["uploaded"] is True and other["sbom_upload"]["uploaded"] is True
    assert "package-lock.json" not in layer_paths(second, app["digest"])
    assert "package-lock.json" in layer_paths(second, deps["digest"])
    assert second["uploaded_bytes"] <= second["size_bytes"] // 100

    bump = ["npm", "version", "patch", "--no-git-tag-version"]
    subprocess.run(bump, cwd=app_dir, check=True, capture_output=True, timeout=120)
    third = aether_json(server.env, "deploy", str(app_dir), "--no-wait")
    assert third["layers"][0]["uploaded"] is True
    assert third["layers"][0]["digest"] != deps["digest"]


def test_an_sbom_taken_as_uploaded_is_uploaded_when_the_server_lacks_it(  # type: ignore[no-untyped-def]
    any_server, tmp_path: Path
) -> None:
    """The first deploy went without an SBOM: the next one's, taken as uploaded beside the
    cached deps layer, is refused by the registration (409) and then uploaded after all."""
    server = any_server
    app_dir = tmp_path / "hello-node"
    shutil.copytree(HELLO_NODE, app_dir, ignore=shutil.ignore_patterns("node_modules", ".aether"))
    first = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--no-sbom")
    assert first["sbom_upload"] is None
    (app_dir / "server.js").write_text((app_dir / "server.js").read_text() + "\n// v2\n")
    second = aether_json(server.env, "deploy", str(app_dir), "--no-wait")
    assert second["layers"][0]["digest"] == first["layers"][0]["digest"]
    assert second["sbom_upload"]["uploaded"] is True and second["release"] == 2
    assert second["layers"][1]["uploaded"] is True  # before the 409: it still counts
    shown = aether_json(server.env, "sbom", "hello-node")
    assert shown["sbom_sha256"] == second["sbom_upload"]["digest"]

"""`aether deploy` of a layered artifact against a real `aether serve` (worker off), on
SQLite and PostgreSQL: a code-only redeploy uploads and stores the app layer alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_support import aether_json, copy_app


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
    first = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--no-install")
    assert first["format"] == 2
    assert [layer["name"] for layer in first["layers"]] == ["deps", "app"]
    assert all(layer["uploaded"] for layer in first["layers"])
    assert first["uploaded_bytes"] == first["size_bytes"]

    (app_dir / "server.js").write_text((app_dir / "server.js").read_text() + "\n// v2\n")
    second = aether_json(server.env, "deploy", str(app_dir), "--no-wait", "--no-install")
    deps, app = second["layers"]
    assert (deps["uploaded"], deps["uploaded_bytes"]) == (False, 0)
    assert deps["digest"] == first["layers"][0]["digest"]
    assert app["uploaded"] is True and app["digest"] != first["layers"][1]["digest"]
    manifest_bytes = second["size_bytes"] - deps["size_bytes"] - app["size_bytes"]
    assert second["uploaded_bytes"] == app["uploaded_bytes"] + manifest_bytes
    assert second["release"] == 2

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

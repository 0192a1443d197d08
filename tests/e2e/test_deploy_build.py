"""`npm test`, `aether deploy`, `npm test` in a row: a TypeScript app built with tsc deploys to
a real `aether serve` (local runtime) and answers, and the developer's tree — node_modules
included — is byte for byte what it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_support import via_proxy

from plugins.node_projects import run, tree_digest, typescript_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

APP, FILES = typescript_app("ts-shop", "shop v1")


def aether(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "aether", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=540)


def aether_json(env: dict[str, str], *args: str) -> Any:
    done = aether(env, *args, "--format", "json")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_npm_test_deploy_npm_test(live_server, node_project, node_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = node_project("ts-shop", APP, FILES)
    server = live_server()
    env = {**server.env, **{k: v for k, v in node_env.items() if k.startswith("npm_config_")}}
    run(["npm", "test"], project, node_env)
    before = tree_digest(project)

    result = aether_json(env, "deploy", str(project), "--check", "--timeout", "120")
    assert result["status"] == "running", result
    assert tree_digest(project) == before
    run(["npm", "test"], project, node_env)
    assert not (project / ".aether").exists()  # the artifact went to the cache dir
    assert Path(result["artifact"]).is_relative_to(Path(env["XDG_CACHE_HOME"]))
    assert result["build"]["built"] is True and result["node_major"] is not None
    assert {"install", "build", "pack", "check", "upload"} <= set(result["timings_ms"])
    assert via_proxy(server.port, "ts-shop") == (200, b"shop v1")
    (shown,) = aether_json(env, "list", "--app", "ts-shop")["deployments"][:1]
    assert shown["node_version"] == str(result["node_major"])

    (project / "src/server.ts").write_text(FILES["src/server.ts"].replace("v1", "v2"))
    second = aether_json(env, "deploy", str(project), "--timeout", "120")
    assert second["build"]["deps_reused"] is True and second["digest"] != result["digest"]
    assert second["timings_ms"]["install"] < result["timings_ms"]["install"]


def test_a_failing_build_stops_the_deploy_with_its_output(
    live_server, node_project, node_env
) -> None:  # type: ignore[no-untyped-def]
    broken = dict(FILES, **{"src/server.ts": "const x: number = 'not a number';\n"})
    project = node_project("ts-broken", APP, broken)
    server = live_server(args=["--no-worker"])
    env = {**server.env, **{k: v for k, v in node_env.items() if k.startswith("npm_config_")}}
    failed = aether(env, "deploy", str(project), "--format", "json")
    assert failed.returncode == 20
    error = json.loads(failed.stdout)["error"]
    assert "`npm run build` failed" in error["message"] and "TS2322" in error["message"]
    assert aether_json(env, "list")["apps"] == []  # nothing was uploaded or registered

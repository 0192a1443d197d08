"""`--check`: the packed artifact boots on this machine with PORT set, or the deploy stops
with the app's own last words. Real node processes, dependency-free apps (no npm)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aether.client.boot import boot_check
from aether.errors import InternalError
from aether.pack import PackOptions, build_artifact

SERVER = """
const http = require("http");
http.createServer((req, res) => {
  res.statusCode = req.url === "/healthz" ? 204 : 404;
  res.end();
}).listen(Number(process.env.PORT));
"""


@pytest.fixture(autouse=True)
def needs_node() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")


def packed(tmp_path: Path, server_js: str) -> Path:
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "app", "main": "server.js"}))
    (project / "server.js").write_text(server_js)
    options = PackOptions(out=tmp_path / "out", sbom=False, cache_dir=tmp_path / "cache")
    return build_artifact(project, options, environ={"PATH": "/usr/bin:/bin"}).artifact


def test_an_app_that_answers_passes(tmp_path: Path) -> None:
    artifact = packed(tmp_path, SERVER)
    report = boot_check(
        artifact, start_command=None, health_path="/healthz", environ={}, scratch=tmp_path / "s"
    )
    assert (report.status, report.command) == (204, "node server.js")
    anything = boot_check(
        artifact, start_command=None, health_path=None, environ={}, scratch=tmp_path / "s"
    )
    assert anything.status == 404  # without a health path any answer counts, as in rollouts
    assert list((tmp_path / "s").iterdir()) == []  # the extracted copy is gone


def test_an_app_that_crashes_is_reported_with_its_output(tmp_path: Path) -> None:
    artifact = packed(tmp_path, 'console.error("no DATABASE_URL"); process.exit(3);\n')
    with pytest.raises(InternalError) as failed:
        boot_check(artifact, start_command=None, health_path=None, environ={}, scratch=tmp_path)
    message = failed.value.message
    assert "exited with code 3 before answering HTTP" in message
    assert "no DATABASE_URL" in message and failed.value.exit_code == 20


def test_an_app_that_never_answers_times_out(tmp_path: Path) -> None:
    artifact = packed(tmp_path, "setInterval(() => {}, 1000);\n")
    with pytest.raises(InternalError, match="gave no answer in time"):
        boot_check(
            artifact,
            start_command=None,
            health_path="/healthz",
            environ={},
            scratch=tmp_path,
            timeout_secs=1.0,
        )

"""The quickstart flow (`make demo`) with the dependency-free fixture app: no network needed.
Runs from the existing venv (the zipapp build has its own test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import app_copy, via_proxy

from plugins.live_server import clean_environ, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]


def run_quickstart(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "quickstart"), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def run_hints(env: dict[str, str], printed: str) -> subprocess.CompletedProcess[str]:
    """The printed commands pasted into a shell where `aether` is on PATH (`-f` left off)."""
    export = re.search(r"^  (export AETHER_API_BASE=.*)$", printed, re.M)
    assert export, printed
    assert re.search(r"^  aether logs demo-app -f$", printed, re.M), printed
    path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    script = f"{export.group(1)}\naether logs demo-app\naether list"
    return subprocess.run(
        ["bash", "-ec", script], env={**env, "PATH": path}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_quickstart_deploys_prints_a_url_that_answers_and_stops(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    env = {
        **clean_environ(),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "AETHER_DEMO_DIR": str(tmp_path / "demo"),
        "AETHER_DEMO_PORT": str(port),
        "AETHER_DEMO_FROM_VENV": "1",
    }
    app = app_copy(tmp_path, "demo-app", "1.0.0")
    pid_file = tmp_path / "demo" / "serve.pid"
    try:
        first = run_quickstart(env, str(app))
        assert first.returncode == 0, first.stderr
        assert f"http://demo-app.localhost:{port}/" in first.stdout
        answered = json.loads(re.search(r"^\{.*\}$", first.stdout, re.M)[0])  # type: ignore[index]
        assert answered["version"] == "1.0.0"
        assert via_proxy(port, "demo-app")[0] == 200
        pid = int(pid_file.read_text())
        pasted = run_hints(env, first.stdout)
        assert pasted.returncode == 0, pasted.stderr
        assert "demo-app" in pasted.stdout

        again = run_quickstart(env, str(app))  # idempotent: same server, same deployment
        assert again.returncode == 0, again.stderr
        assert "already runs" in again.stderr
        assert int(pid_file.read_text()) == pid
        assert not (home / ".cache" / "aether" / "session.json").exists()
    finally:
        stopped = run_quickstart(env, "--stop")
    assert stopped.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert via_proxy(port, "demo-app")[0] == 0

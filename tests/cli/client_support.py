"""Running the real CLI against a live control plane, as a user would (one subprocess each)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FIXTURE_APP = Path(__file__).parent / "fixtures" / "tiny-node-app"


def aether(
    env: Mapping[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m aether ARGS`` with ``env``; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "aether", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def aether_json(env: Mapping[str, str], *args: str, cwd: Path | None = None) -> dict[str, Any]:
    """Run with ``--format json``, assert success, return the one object on stdout."""
    result = aether(env, *args, "--format", "json", cwd=cwd)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def without(env: Mapping[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in env.items() if key not in names}


def copy_app(dest: Path, *, name: str = "tiny-node-app", version: str = "1.0.0") -> Path:
    """A copy of the dependency-free fixture app (its own tree, so packing writes there)."""
    dest.mkdir(parents=True, exist_ok=True)
    for source in FIXTURE_APP.iterdir():
        (dest / source.name).write_bytes(source.read_bytes())
    package = json.loads((dest / "package.json").read_text())
    package.update(name=name, version=version)
    (dest / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    return dest

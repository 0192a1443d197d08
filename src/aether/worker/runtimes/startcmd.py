"""What to run for a release, and with which environment.

The default is the package's ``start`` script, run the way ``npm start`` runs it (``sh -c``
in the release folder with ``node_modules/.bin`` on ``PATH``) but without npm's own start-up
time; without a start script, ``node <main>`` (``server.js`` or ``index.js`` when ``main`` is
unset). A deployment's start command replaces both. A simple command is ``exec``-ed so the
supervised process *is* the app and receives its signals directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from aether.pack.entry import default_start_command
from aether.worker.outcomes import Fatal

_SHELL_SYNTAX = set(";&|<>()$`\\\n*?[]{}!#~")
# Worker configuration that must never leak into an app's environment.
# XDG_*, SHIV_* and KUBECONFIG point into the server's home; the app gets a HOME of its own.
_PRIVATE_PREFIXES = ("AETHER_", "DATABASE_URL", "AWS_", "PG", "XDG_", "SHIV_", "KUBECONFIG")


def start_script(release_dir: Path) -> str:
    """The shell command that starts the release by default (the client checks the same one
    before uploading: ``aether.pack.entry``)."""
    package = _read_package_json(release_dir)
    return default_start_command(package, lambda path: (release_dir / path).is_file())


def _read_package_json(release_dir: Path) -> dict:
    path = release_dir / "package.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Fatal(f"cannot read package.json of the release: {exc}") from exc
    return data if isinstance(data, dict) else {}


def shell_argv(command: str) -> list[str]:
    """``sh -c`` argv; plain ``prog args`` commands are exec-ed to drop the shell."""
    if not any(ch in _SHELL_SYNTAX for ch in command) and command.split():
        command = f"exec {command}"
    return ["/bin/sh", "-c", command]


def process_env(
    base: Mapping[str, str],
    release_dir: Path,
    *,
    port: int,
    deployment_id: str,
    digest: str,
    app_env: Mapping[str, str],
    scratch: Path,
    node_dir: str | None = None,
) -> dict[str, str]:
    """The app's environment: the worker's (minus its private settings), then the deployment's
    env, then what Aether sets itself; ``HOME`` and ``TMPDIR`` are in the app's scratch."""
    env = {k: v for k, v in base.items() if not k.startswith(_PRIVATE_PREFIXES)}
    env.setdefault("NODE_ENV", "production")
    env.update({str(k): str(v) for k, v in app_env.items()})
    env["HOME"] = str(scratch / "home")
    env["TMPDIR"] = str(scratch / "tmp")
    bin_dir = str(release_dir / "node_modules" / ".bin")
    path = env.get("PATH", os.defpath)
    if node_dir is not None:  # the node of the release's Node.js major comes first
        path = node_dir + os.pathsep + path
    env["PATH"] = bin_dir + os.pathsep + path
    env["PORT"] = str(port)
    env["AETHER_DEPLOYMENT_ID"] = deployment_id
    env["AETHER_DIGEST"] = digest
    return env

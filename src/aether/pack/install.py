"""The install step: a frozen, production-only dependency install before packing.

``package-lock.json`` → ``npm ci --omit=dev``; ``pnpm-lock.yaml`` → ``pnpm install
--frozen-lockfile --prod``; ``yarn.lock`` → yarn's frozen production install; no lockfile →
``npm install --omit=dev`` (skipped when package.json declares no dependencies). With npm, the
install is skipped when ``node_modules/.package-lock.json`` (npm's record of what it installed)
matches the lockfile, so a warm redeploy does not pay for npm.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether.errors import ConfigError, InternalError
from aether.pack.project import Lockfile, find_lockfile, has_dependencies, read_json_file

_STDERR_TAIL = 4000


@dataclass(frozen=True)
class InstallOutcome:
    command: tuple[str, ...] | None  # what ran; None when skipped
    reason: str  # why it ran or was skipped


def install_dependencies(
    project_dir: Path, package: dict[str, Any], environ: Mapping[str, str]
) -> InstallOutcome:
    lockfile = find_lockfile(project_dir)
    if lockfile is None and not has_dependencies(package):
        return InstallOutcome(None, "package.json declares no dependencies")
    if (
        lockfile is not None
        and lockfile.manager == "npm"
        and node_modules_in_sync(project_dir, lockfile)
    ):
        return InstallOutcome(None, "node_modules already matches the lockfile")
    command = install_command(lockfile, environ)
    _run(command, project_dir, environ)
    return InstallOutcome(command, f"installed with {command[0]}")


def install_command(lockfile: Lockfile | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    if lockfile is None:
        return (_tool("npm", environ), "install", "--omit=dev")
    if lockfile.manager == "npm":
        return (_tool("npm", environ), "ci", "--omit=dev")
    if lockfile.manager == "pnpm":
        return (_tool("pnpm", environ), "install", "--frozen-lockfile", "--prod")
    yarn = _tool("yarn", environ)
    if _yarn_is_classic(yarn, environ):
        return (yarn, "install", "--frozen-lockfile", "--production")
    return (yarn, "workspaces", "focus", "--all", "--production")


def _tool(name: str, environ: Mapping[str, str]) -> str:
    found = shutil.which(name, path=environ.get("PATH"))
    if found is None:
        raise ConfigError(
            f"{name} is not on PATH but the project needs it to install dependencies; "
            f"install {name}, or pass --no-install to pack node_modules as it is"
        )
    return found


def _yarn_is_classic(yarn: str, environ: Mapping[str, str]) -> bool:
    import subprocess  # ~5 ms to import: only for packs that run an installer

    result = subprocess.run(
        [yarn, "--version"], capture_output=True, text=True, env=dict(environ), check=False
    )
    return result.stdout.strip().startswith("1.")


def _run(command: tuple[str, ...], cwd: Path, environ: Mapping[str, str]) -> None:
    import subprocess  # ~5 ms to import: only for packs that run an installer

    shown = " ".join((Path(command[0]).name, *command[1:]))
    try:
        result = subprocess.run(
            command, cwd=cwd, env=dict(environ), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise InternalError(f"cannot run `{shown}`: {exc.strerror or exc}") from exc
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-_STDERR_TAIL:]
        raise InternalError(f"`{shown}` failed with exit code {result.returncode}:\n{detail}")


def node_modules_in_sync(project_dir: Path, lockfile: Lockfile) -> bool:
    """True when npm's hidden lockfile records exactly the lockfile's production packages."""
    hidden = read_json_file(project_dir / "node_modules" / ".package-lock.json")
    lock = read_json_file(lockfile.path)
    if hidden is None or lock is None:
        return False
    installed = hidden.get("packages")
    wanted = lock.get("packages")
    if not isinstance(installed, dict) or not isinstance(wanted, dict):
        return False
    for path, entry in wanted.items():
        if path == "" or not isinstance(entry, dict) or entry.get("link"):
            continue
        present = installed.get(path)
        if entry.get("dev"):
            if present is not None:
                return False  # dev packages are installed: `npm ci --omit=dev` would drop them
        elif present is None:
            if not (entry.get("optional") or entry.get("devOptional")):
                return False
        elif not _same_package(entry, present):
            return False
    return all(path in wanted for path in installed)


def _same_package(wanted: dict[str, Any], present: object) -> bool:
    if not isinstance(present, dict):
        return False
    return all(wanted.get(key) == present.get(key) for key in ("version", "resolved", "integrity"))

"""pytest plugin: real Node.js projects installed from the npm registry, for the build tests.

``node_env`` is the environment every such test runs npm and aether with: one npm download
cache for this user's test runs (``$XDG_CACHE_HOME/aether-tests/npm``), shared by the xdist
workers and by later runs in any clone (npm's cache is content-addressed and takes concurrent
writers; with ``prefer-offline`` a package seen once is not asked for again: the versions
these tests install are pinned), and one aether cache dir per session (a production install is shared
by every test of the session with the same key). ``node_project`` writes a
project and runs the developer's own install in it, so the tree looks like one on a laptop.
These tests are marked ``slow``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

INSTALL_TIMEOUT_SECS = 600


def typescript_app(name: str, greeting: str) -> tuple[dict, dict[str, str]]:
    """(package.json, files) of an Express app in TypeScript: ``build`` runs tsc, ``test``
    type-checks (so it fails when devDependencies are gone)."""
    package = {
        "name": name,
        "version": "1.0.0",
        "private": True,
        "scripts": {"build": "tsc", "start": "node dist/server.js", "test": "tsc --noEmit"},
        "engines": {"node": ">=18"},
        "dependencies": {"express": "4.21.2"},
        "devDependencies": {
            "typescript": "5.6.3",
            "@types/express": "4.17.21",
            "@types/node": "20.17.6",
        },
    }
    files = {
        "src/server.ts": (
            'import express from "express";\nconst app = express();\n'
            f'app.get("/", (_req, res) => {{ res.send("{greeting}"); }});\n'
            "app.listen(Number(process.env.PORT ?? 3000));\n"
        ),
        # skipLibCheck, as most projects set it: tsc checks the app's code, not the 20,000
        # lines of @types/node again on every run (a third of the CPU per `tsc` here).
        "tsconfig.json": (
            '{"compilerOptions": {"outDir": "dist", "rootDir": "src", "module": "commonjs",'
            ' "target": "es2020", "esModuleInterop": true, "strict": true,'
            ' "skipLibCheck": true}}\n'
        ),
    }
    return package, files


def npm_cache() -> Path:
    """npm's download cache for this user's test runs (like the dashboard tests' axe-core)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "aether-tests" / "npm"


@pytest.fixture(scope="session")
def node_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("Node.js with npm is not installed")
    root = tmp_path_factory.mktemp("node-env")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "XDG_", "npm_"))}
    # The machine's own npm settings (registry, nodedir for node-gyp…), as a developer has them.
    userconfig = Path.home() / ".npmrc"
    if userconfig.is_file():
        keep["npm_config_userconfig"] = str(userconfig)
    return {
        **keep,
        "HOME": str(root / "home"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "npm_config_cache": str(npm_cache()),
        "npm_config_prefer_offline": "true",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_yes": "true",
    }


def run(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str:
    result = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECS,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def write_project(folder: Path, package: dict, files: Mapping[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    for name, text in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="session")
def node_project(
    node_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """``node_project(name, package, files, install=["npm", "install"])`` → its folder."""

    def make(
        name: str,
        package: dict,
        files: Mapping[str, str] | None = None,
        install: Sequence[str] = ("npm", "install"),
    ) -> Path:
        folder = write_project(tmp_path_factory.mktemp("projects") / name, package, files)
        if install:
            run(install, folder, node_env)
        return folder

    return make


def tree_digest(folder: Path) -> str:
    """Every path, type, mode, link target and byte under ``folder`` (node_modules too)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(folder)}\0{info.st_mode}\0{info.st_mtime_ns}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()

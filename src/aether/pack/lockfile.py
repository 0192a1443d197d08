"""What the lockfile says is installed: the SBOM's input, readable without cyclonedx."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from aether import __version__
from aether.pack.project import read_json_file


def lock_packages(
    project_dir: Path, installed_root: Path | None = None
) -> dict[str, dict[str, Any]]:
    """The lockfile's packages; ``installed_root`` holds node_modules when it is not in
    ``project_dir`` (the staged build's production install)."""
    for candidate in (
        project_dir / "package-lock.json",
        project_dir / "npm-shrinkwrap.json",
        (installed_root or project_dir) / "node_modules/.package-lock.json",
    ):
        lock = read_json_file(candidate)
        if lock is not None and isinstance(lock.get("packages"), dict):
            return {k: v for k, v in lock["packages"].items() if isinstance(v, dict)}
    return {}


def installed_packages(
    installed_root: Path, packages: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Non-dev lockfile entries; optional ones only when they are on disk under
    ``installed_root`` (the folder holding node_modules)."""
    keep = {}
    for path, entry in sorted(packages.items()):
        if path == "" or entry.get("dev") or entry.get("link"):
            continue
        if entry.get("optional") or entry.get("devOptional"):
            if not (installed_root / path).is_dir():
                continue
        keep[path] = entry
    return keep


def sbom_inputs_key(
    project_dir: Path,
    package: dict[str, Any],
    source_date_epoch: int | None,
    installed_root: Path | None = None,
) -> str:
    """A digest of everything the SBOM is made from; equal keys give identical SBOMs, so a
    code-only redeploy reuses the last one instead of paying for cyclonedx again."""
    installed_root = installed_root or project_dir
    installed = installed_packages(installed_root, lock_packages(project_dir, installed_root))
    inputs = [__version__, source_date_epoch, package, installed]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

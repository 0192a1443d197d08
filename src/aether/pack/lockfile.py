"""What the lockfile says is installed: the SBOM's input, readable without cyclonedx."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from aether import __version__
from aether.pack.project import read_json_file


def lock_packages(project_dir: Path) -> dict[str, dict[str, Any]]:
    for candidate in (
        "package-lock.json",
        "npm-shrinkwrap.json",
        "node_modules/.package-lock.json",
    ):
        lock = read_json_file(project_dir / candidate)
        if lock is not None and isinstance(lock.get("packages"), dict):
            return {k: v for k, v in lock["packages"].items() if isinstance(v, dict)}
    return {}


def installed_packages(
    project_dir: Path, packages: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Non-dev lockfile entries; optional ones only when they are on disk."""
    keep = {}
    for path, entry in sorted(packages.items()):
        if path == "" or entry.get("dev") or entry.get("link"):
            continue
        if entry.get("optional") or entry.get("devOptional"):
            if not (project_dir / path).is_dir():
                continue
        keep[path] = entry
    return keep


def sbom_inputs_key(
    project_dir: Path, package: dict[str, Any], source_date_epoch: int | None
) -> str:
    """A digest of everything the SBOM is made from; equal keys give identical SBOMs, so a
    code-only redeploy reuses the last one instead of paying for cyclonedx again."""
    installed = installed_packages(project_dir, lock_packages(project_dir))
    inputs = [__version__, source_date_epoch, package, installed]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

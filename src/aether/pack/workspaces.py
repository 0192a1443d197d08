"""Workspaces: deploying one package of an npm, yarn or pnpm monorepo.

``aether deploy packages/api`` finds the workspace root above ``packages/api`` (a package.json
whose ``workspaces`` globs, or a ``pnpm-workspace.yaml`` whose ``packages`` globs, match the
folder), builds from the root (one lockfile, one install), and ships the root's package.json,
the deployed package and the workspace packages it depends on (by name, transitively), each
with the production dependencies the install gave it. The app starts in the package's folder.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import NamedTuple

from aether.pack.project import read_json_file


class Workspace(NamedTuple):
    root: Path  # the monorepo's root folder
    package: str  # the deployed package's folder, relative to root ("packages/api")
    members: dict[str, str]  # every workspace package: folder (relative) → package name

    def needed(self) -> list[str]:
        """The deployed package and the workspace packages it depends on, in build order."""
        by_name = {name: folder for folder, name in self.members.items()}
        order: list[str] = []
        visiting: set[str] = set()

        def visit(folder: str) -> None:
            if folder in order or folder in visiting:
                return
            visiting.add(folder)
            for dependency in _dependency_names(self.root / folder):
                if dependency in by_name:
                    visit(by_name[dependency])
            order.append(folder)

        visit(self.package)
        return order


def find_workspace(project_dir: Path) -> Workspace | None:
    """The workspace ``project_dir`` belongs to, when it is a member of one above it."""
    project_dir = project_dir.resolve()
    for candidate in project_dir.parents:
        patterns = _workspace_globs(candidate)
        if patterns is None:
            continue
        members = _members(candidate, patterns)
        rel = project_dir.relative_to(candidate).as_posix()
        if rel in members:
            return Workspace(candidate, rel, members)
        return None  # the nearest root does not list it: a nested, separate project
    return None


def _workspace_globs(folder: Path) -> list[str] | None:
    pnpm = folder / "pnpm-workspace.yaml"
    if pnpm.is_file():
        return _pnpm_globs(pnpm.read_text(encoding="utf-8"))
    if not (folder / "package.json").is_file():
        return None
    package = read_json_file(folder / "package.json") or {}
    declared = package.get("workspaces")
    if isinstance(declared, dict):  # yarn classic's {"packages": [...], "nohoist": [...]}
        declared = declared.get("packages")
    if isinstance(declared, list) and all(isinstance(item, str) for item in declared):
        return declared
    return None


def _pnpm_globs(text: str) -> list[str]:
    """The ``packages:`` list of pnpm-workspace.yaml (a flat YAML list of strings)."""
    globs: list[str] = []
    inside = False
    for line in text.splitlines():
        if re.match(r"^packages\s*:", line):
            inside = True
            continue
        if inside:
            item = re.match(r"^\s+-\s*['\"]?([^'\"#]+?)['\"]?\s*(#.*)?$", line)
            if item:
                globs.append(item[1])
            elif line.strip() and not line.startswith((" ", "\t")):
                break
    return globs


def _members(root: Path, patterns: list[str]) -> dict[str, str]:
    members: dict[str, str] = {}
    excluded = [p[1:] for p in patterns if p.startswith("!")]
    for pattern in (p for p in patterns if not p.startswith("!")):
        for found in sorted(root.glob(pattern.rstrip("/"))):
            rel = found.relative_to(root).as_posix()
            if "node_modules" in rel.split("/") or any(fnmatch.fnmatch(rel, x) for x in excluded):
                continue
            package = read_json_file(found / "package.json")
            if package is not None:
                members[rel] = str(package.get("name") or rel)
    return members


def _dependency_names(folder: Path) -> list[str]:
    try:
        package = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names: list[str] = []
    for field in ("dependencies", "optionalDependencies"):
        declared = package.get(field)
        if isinstance(declared, dict):
            names.extend(sorted(declared))
    return names

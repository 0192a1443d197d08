"""What kind of Node.js project a folder holds: its package.json and its lockfile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from aether.errors import IOFailure, UsageError

# The first lockfile found decides the package manager.
LOCKFILES = (
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
)


class Lockfile(NamedTuple):
    path: Path
    manager: str  # npm | pnpm | yarn


def read_package_json(project_dir: Path) -> dict[str, Any]:
    """The parsed package.json; UsageError (exit 2) when it is missing or not a JSON object."""
    path = project_dir / "package.json"
    if not project_dir.is_dir():
        raise UsageError(f"{project_dir} is not a folder; pass the path of a Node.js project")
    if not path.is_file():
        raise UsageError(
            f"no package.json in {project_dir}: aether packs Node.js projects; "
            "run it in the project folder or pass the project's PATH"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise UsageError(f"{path} is nested too deeply") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return data


def find_lockfile(project_dir: Path) -> Lockfile | None:
    for name, manager in LOCKFILES:
        path = project_dir / name
        if path.is_file():
            return Lockfile(path, manager)
    return None


def read_json_file(path: Path) -> dict[str, Any] | None:
    """A JSON object from disk, or None when the file is absent or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise UsageError(f"{path} is nested too deeply") from exc
    return data if isinstance(data, dict) else None


def has_dependencies(package: dict[str, Any]) -> bool:
    """True when package.json declares production or optional dependencies."""
    return bool(package.get("dependencies") or package.get("optionalDependencies"))

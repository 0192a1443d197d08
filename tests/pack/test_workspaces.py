"""Finding the workspace a package belongs to, and what it needs from its siblings."""

from __future__ import annotations

import json
from pathlib import Path

from aether.pack.workspaces import find_workspace


def _package(folder: Path, **fields: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(fields))


def test_npm_workspace_members_and_build_order(tmp_path: Path) -> None:
    _package(tmp_path, name="mono", workspaces=["packages/*"])
    _package(tmp_path / "packages/api", name="@m/api", dependencies={"@m/shared": "1", "ms": "2"})
    _package(tmp_path / "packages/shared", name="@m/shared", dependencies={"@m/util": "1"})
    _package(tmp_path / "packages/util", name="@m/util")
    _package(tmp_path / "packages/web", name="@m/web")
    found = find_workspace(tmp_path / "packages/api")
    assert found is not None and found.root == tmp_path.resolve()
    assert found.package == "packages/api"
    assert found.needed() == ["packages/util", "packages/shared", "packages/api"]
    assert find_workspace(tmp_path) is None  # the root itself deploys as a plain project


def test_pnpm_workspace_file(tmp_path: Path) -> None:
    _package(tmp_path, name="mono")
    (tmp_path / "pnpm-workspace.yaml").write_text("packages:\n  - 'apps/*'\n  - \"!apps/old\"\n")
    _package(tmp_path / "apps/api", name="api")
    _package(tmp_path / "apps/old", name="old")
    found = find_workspace(tmp_path / "apps/api")
    assert found is not None and set(found.members) == {"apps/api"}
    assert find_workspace(tmp_path / "apps/old") is None

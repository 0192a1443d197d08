"""Choosing the package manager: lockfile, packageManager field, the tool on PATH or npx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aether.errors import UsageError
from aether.pack.managers import choose_manager
from aether.pack.target import Target


def _tool(folder: Path, name: str, version: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, version in (("npm", "11.1.0"), ("pnpm", "9.15.0"), ("yarn", "1.22.22")):
        _tool(folder, name, version)
    _tool(folder, "npx", "11.1.0")
    return {"PATH": str(folder)}


def _choose(project: Path, package: dict, environ: dict[str, str]):  # type: ignore[no-untyped-def]
    return choose_manager(project, package, environ, project / "cache")


@pytest.mark.parametrize(
    ("lockfile", "content", "flavour", "version"),
    [
        ("package-lock.json", "{}", "npm", "11.1.0"),
        ("pnpm-lock.yaml", "lockfileVersion: '9.0'\n", "pnpm", "9.15.0"),
        ("yarn.lock", "# yarn lockfile v1\n", "yarn-classic", "1.22.22"),
    ],
)
def test_the_lockfile_decides(
    tmp_path: Path, tools: dict[str, str], lockfile: str, content: str, flavour: str, version: str
) -> None:
    (tmp_path / lockfile).write_text(content)
    manager = _choose(tmp_path, {}, tools)
    assert (manager.flavour, manager.version) == (flavour, version)
    assert manager.argv == (str(Path(tools["PATH"]) / manager.name),)


def test_berry_lockfile_and_a_missing_version_go_through_npx(
    tmp_path: Path, tools: dict[str, str]
) -> None:
    (tmp_path / "yarn.lock").write_text("__metadata:\n  version: 8\n")
    manager = _choose(tmp_path, {"packageManager": "yarn@4.5.0+sha512.abc"}, tools)
    assert manager.flavour == "yarn-berry"
    assert manager.argv[1:] == ("--yes", "--package", "@yarnpkg/cli-dist@4.5.0", "--", "yarn")
    install = manager.production_install(Target("linux", "x64", "glibc"))
    assert install[-4:] == ("workspaces", "focus", "--all", "--production")


def test_npm_aims_the_production_install_at_the_target(
    tmp_path: Path, tools: dict[str, str]
) -> None:
    (tmp_path / "package-lock.json").write_text("{}")
    manager = _choose(tmp_path, {}, tools)
    command = manager.production_install(Target("linux", "arm64", "musl"), ("packages/api", "api"))
    assert command[1:] == (
        "ci", "--omit=dev", "--no-audit", "--no-fund",
        "--os=linux", "--cpu=arm64", "--libc=musl", "--workspace=packages/api",
    )  # fmt: skip


def test_a_package_manager_field_that_contradicts_the_lockfile(
    tmp_path: Path, tools: dict[str, str]
) -> None:
    (tmp_path / "package-lock.json").write_text("{}")
    with pytest.raises(UsageError, match="remove the stale one"):
        _choose(tmp_path, json.loads('{"packageManager": "pnpm@9.1.0"}'), tools)
    with pytest.raises(UsageError, match="name@version"):
        _choose(tmp_path, {"packageManager": "pnpm"}, tools)

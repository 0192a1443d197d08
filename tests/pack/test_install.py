"""The install step: skipped when node_modules matches the lockfile, npm's error text on failure.

No test reaches the npm registry: the failing case runs npm with ``offline`` set, so it fails
on the package it may not download, and every skip is proven by an empty PATH (had
aether tried to run npm, it would have failed with a ConfigError).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pack_support import package_lock

from aether.errors import ConfigError, InternalError, UsageError
from aether.pack import PackOptions, build_artifact, read_package_json
from aether.pack.install import install_command, node_modules_in_sync
from aether.pack.project import Lockfile, find_lockfile

NO_TOOLS = {"PATH": ""}


def pack(project: Path, environ: dict[str, str]):
    return build_artifact(project, PackOptions(sbom=False), environ=environ)


def test_matching_hidden_lockfile_skips_npm(sample: Path) -> None:
    result = pack(sample, NO_TOOLS)
    assert result.files > 0
    assert result.timings_ms["install"] >= 0


def test_out_of_date_node_modules_needs_npm(sample: Path) -> None:
    hidden = sample / "node_modules" / ".package-lock.json"
    data = json.loads(hidden.read_text())
    data["packages"]["node_modules/left-pad"]["version"] = "1.2.0"
    hidden.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="npm is not on PATH.*--no-install"):
        pack(sample, NO_TOOLS)


@pytest.mark.parametrize(
    ("change", "in_sync"),
    [
        (lambda p: None, True),
        (lambda p: p.pop("node_modules/@types/node"), False),  # missing package
        (lambda p: p.update({"node_modules/extra": {"version": "1.0.0"}}), False),  # extra
        (lambda p: p.update({"node_modules/jest": {"version": "29.0.0", "dev": True}}), False),
    ],
)
def test_sync_check(sample: Path, change, in_sync: bool) -> None:
    hidden = sample / "node_modules" / ".package-lock.json"
    data = json.loads(hidden.read_text())
    change(data["packages"])
    hidden.write_text(json.dumps(data))
    lockfile = Lockfile(sample / "package-lock.json", "npm")
    assert node_modules_in_sync(sample, lockfile) is in_sync


def test_optional_packages_may_be_absent(sample: Path) -> None:
    lock = package_lock()
    lock["packages"] = dict(lock["packages"])
    lock["packages"]["node_modules/fsevents"] = {"version": "2.3.3", "optional": True}
    (sample / "package-lock.json").write_text(json.dumps(lock))
    assert node_modules_in_sync(sample, Lockfile(sample / "package-lock.json", "npm"))


def test_no_dependencies_and_no_lockfile_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "plain"}')
    (tmp_path / "index.js").write_text("1")
    assert pack(tmp_path, NO_TOOLS).files == 2
    assert not (tmp_path / "package-lock.json").exists()


def test_installer_choice(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool in ("npm", "pnpm"):
        (fake_bin / tool).write_text("#!/bin/sh\nexit 0\n")
        (fake_bin / tool).chmod(0o755)
    environ = {"PATH": str(fake_bin)}
    npm, pnpm = str(fake_bin / "npm"), str(fake_bin / "pnpm")
    assert install_command(None, environ) == (npm, "install", "--omit=dev")
    assert install_command(Lockfile(tmp_path / "package-lock.json", "npm"), environ) == (
        npm,
        "ci",
        "--omit=dev",
    )
    assert install_command(Lockfile(tmp_path / "pnpm-lock.yaml", "pnpm"), environ) == (
        pnpm,
        "install",
        "--frozen-lockfile",
        "--prod",
    )
    with pytest.raises(ConfigError, match="yarn is not on PATH"):
        install_command(Lockfile(tmp_path / "yarn.lock", "yarn"), environ)
    (tmp_path / "yarn.lock").write_text("")
    assert find_lockfile(tmp_path) == Lockfile(tmp_path / "yarn.lock", "yarn")


@pytest.mark.slow
def test_failing_npm_ci_is_exit_20_with_npm_text(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    (tmp_path / "package.json").write_text(
        json.dumps({"name": "broken", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}})
    )
    (tmp_path / "package-lock.json").write_text(
        json.dumps(
            {"name": "broken", "version": "1.0.0", "lockfileVersion": 3, "packages": {"": {}}}
        )
    )
    environ = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "npm_config_offline": "true",
        "npm_config_update_notifier": "false",
    }
    with pytest.raises(InternalError) as caught:
        pack(tmp_path, environ)
    assert caught.value.exit_code == 20
    assert "npm ci --omit=dev" in caught.value.message
    assert "npm error code ENOTCACHED" in caught.value.message  # npm's own words


def test_missing_or_broken_package_json_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no package.json") as caught:
        read_package_json(tmp_path)
    assert caught.value.exit_code == 2
    (tmp_path / "package.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_package_json(tmp_path)
    (tmp_path / "package.json").write_text("[]")
    with pytest.raises(UsageError, match="JSON object"):
        read_package_json(tmp_path)

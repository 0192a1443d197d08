"""The host-wide app uid registry: one uid per app on the host, whatever the data dir, never
handed out twice, never one a live process holds. Registries here are private to each test and
use uids far above any the real registry hands out, so concurrent runs cannot disturb them."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aether.errors import ConfigError
from aether.settings import WorkerSettings
from aether.worker.runtimes.appusers import app_uid, live_uids

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a process as another uid")


@pytest.fixture
def base() -> int:
    # Far from AETHER_SANDBOX_UID_BASE's default and from other tests' registries.
    return 1_900_000_000 + secrets.randbelow(50_000_000)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "registry" / "app-uids.json"


def apps_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name / "apps"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_an_app_keeps_its_uid_and_other_data_dirs_get_others(
    registry: Path, tmp_path: Path, base: int
) -> None:
    one, two = apps_dir(tmp_path, "one"), apps_dir(tmp_path, "two")
    first = app_uid(registry, one, "hello", base=base)
    assert first >= base
    assert app_uid(registry, one, "hello", base=base) == first
    same_name_elsewhere = app_uid(registry, two, "hello", base=base)
    other_app = app_uid(registry, one, "other", base=base)
    assert len({first, same_name_elsewhere, other_app}) == 3


def test_concurrent_workers_never_get_the_same_uid(
    registry: Path, tmp_path: Path, base: int
) -> None:
    dirs = [apps_dir(tmp_path, f"data{i}") for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:  # each call locks the registry itself
        uids = list(pool.map(lambda d: app_uid(registry, d, "hello", base=base), dirs))
    assert len(set(uids)) == len(uids)


@needs_root
def test_a_uid_held_by_a_live_process_is_skipped(registry: Path, tmp_path: Path, base: int) -> None:
    first = app_uid(registry, apps_dir(tmp_path, "one"), "a", base=base)
    squatter = subprocess.Popen(["sleep", "60"], user=first + 1, group=first + 1, extra_groups=[])
    try:
        assert first + 1 in live_uids()
        second = app_uid(registry, apps_dir(tmp_path, "two"), "b", base=base)
        assert second > first and second != first + 1
    finally:
        squatter.kill()
        squatter.wait()


def test_numbers_are_never_reused_after_a_data_dir_is_gone(
    registry: Path, tmp_path: Path, base: int
) -> None:
    gone = apps_dir(tmp_path, "gone")
    old = app_uid(registry, gone, "hello", base=base)
    shutil.rmtree(gone.parent)
    new = app_uid(registry, apps_dir(tmp_path, "new"), "hello", base=base)
    assert new > old
    table = json.loads(registry.read_text())
    assert str(gone.resolve()) not in table["apps"]  # forgotten, its number retired


@needs_root
def test_a_registry_others_could_edit_is_refused(registry: Path, tmp_path: Path, base: int) -> None:
    app_uid(registry, apps_dir(tmp_path, "one"), "hello", base=base)
    registry.chmod(0o666)
    with pytest.raises(PermissionError, match="writable by nobody else"):
        app_uid(registry, apps_dir(tmp_path, "one"), "hello", base=base)
    registry.chmod(0o600)
    os.chown(registry.parent, 1000, 1000)
    with pytest.raises(PermissionError, match="must belong to uid 0"):
        app_uid(registry, apps_dir(tmp_path, "two"), "hello", base=base)


def test_the_registry_path_must_be_absolute() -> None:
    with pytest.raises(ConfigError, match="AETHER_SANDBOX_UID_REGISTRY"):
        WorkerSettings.from_env({"AETHER_SANDBOX_UID_REGISTRY": "app-uids.json"})

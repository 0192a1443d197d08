"""The wheel cache of the single-file build (``onefile.wheels``), shared by every checkout of
a user: a rebuild asks no index, a changed lock file never gets an old wheel, a damaged file
is downloaded again, and builds at the same time leave whole files.

pip runs for real, against a folder of wheels made here (``PIP_NO_INDEX`` and
``PIP_FIND_LINKS``): the index is the only thing replaced.
"""

from __future__ import annotations

import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from onefile import wheels
from onefile.platforms import LINUX_X86_64

NAME = "aether-cache-probe"
VERSION = (3, 12)


def make_wheel(folder: Path, version: str) -> Path:
    """A pure wheel of NAME at ``version`` whose module says its version."""
    module, dist = NAME.replace("-", "_"), f"{NAME.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist}/RECORD"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The only place pip finds wheels: versions 1.0 and 1.1 of NAME."""
    folder = tmp_path / "index"
    make_wheel(folder, "1.0")
    make_wheel(folder, "1.1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def lock(tmp_path: Path, version: str) -> Path:
    path = tmp_path / f"runtime-{version}.lock"
    path.write_text(f"{NAME}=={version}\n    # via requirements.in\n")
    return path


def resolve(store: Path, lock_file: Path) -> list[Path]:
    return wheels.resolve(store, lock_file, LINUX_X86_64, VERSION)


def test_a_rebuild_asks_no_index_and_a_changed_lock_never_gets_the_old_wheel(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "cache"
    [old] = resolve(store, lock(tmp_path, "1.0"))
    [new] = resolve(store, lock(tmp_path, "1.1"))
    assert "-1.0-" in old.name and "-1.1-" in new.name
    assert new.read_bytes() == (index / new.name).read_bytes()
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))  # pip would fail now
    assert resolve(store, lock(tmp_path, "1.0")) == [old]
    assert resolve(store, lock(tmp_path, "1.1")) == [new]


def test_a_damaged_wheel_is_downloaded_again(index: Path, tmp_path: Path) -> None:
    store = tmp_path / "cache"
    [wheel] = resolve(store, lock(tmp_path, "1.0"))
    whole = wheel.read_bytes()
    wheel.write_bytes(whole[: len(whole) // 2])  # a download cut short, a disk error
    assert resolve(store, lock(tmp_path, "1.0")) == [wheel]
    assert wheel.read_bytes() == whole


def test_builds_at_the_same_time_leave_whole_files(index: Path, tmp_path: Path) -> None:
    store, lock_file = tmp_path / "cache", lock(tmp_path, "1.0")
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: resolve(store, lock_file), range(3)))
    assert all(result == results[0] for result in results)
    [wheel] = results[0]
    assert wheel.read_bytes() == (index / wheel.name).read_bytes()
    assert [p.name for p in store.iterdir()] and not list(store.glob("download-*"))
    assert len(list((store / "resolved").iterdir())) == 1


def test_a_version_the_index_lacks_fails_and_records_nothing(index: Path, tmp_path: Path) -> None:
    store = tmp_path / "cache"
    with pytest.raises(wheels.DownloadFailed, match="linux-x86_64 on CPython 3.12"):
        resolve(store, lock(tmp_path, "9.9"))
    assert not (store / "resolved").exists()

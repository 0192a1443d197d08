"""The locked runtime set as wheels for one platform and Python version, downloaded once.

``pip download --only-binary=:all: --platform … --python-version …`` picks the wheels; they
are kept in ``build/wheels/files/`` (one copy of each, shared by every platform and version)
with a list per platform and version, keyed by the requirements and the accepted tags. While
that key is unchanged a rebuild reads the list and never asks the index: offline and quick.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from onefile.platforms import Platform

LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
# pip's configuration on some machines adds unusable find-links locations; it says so once
# per package, which buries the answer.
_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")


class DownloadFailed(Exception):
    """pip could not find or fetch a wheel of the locked set for a platform."""


def requirements(lock: Path, platform: Platform) -> list[str]:
    """``name==version`` lines of the lock file, with the platform's overrides applied."""
    overrides = {canonicalize_name(o.name): o.version for o in platform.overrides}
    pins = []
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        pins.append(f"{name}=={overrides.get(canonicalize_name(name), version)}")
    return pins


def resolve_all(
    store: Path, lock: Path, platform: Platform, versions: tuple[tuple[int, int], ...]
) -> dict[tuple[int, int], list[Path]]:
    """The wheels for each version, downloading (three at a time) what is not yet stored."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {v: pool.submit(resolve, store, lock, platform, v) for v in versions}
        return {version: future.result() for version, future in futures.items()}


def resolve(store: Path, lock: Path, platform: Platform, version: tuple[int, int]) -> list[Path]:
    pins = requirements(lock, platform)
    key = hashlib.sha256("\n".join([*pins, *platform.wheel_tags, repr(version)]).encode())
    record = store / "resolved" / f"{platform.name}-cp{version[0]}{version[1]}.txt"
    files = store / "files"
    if record.is_file():
        head, *names = record.read_text().splitlines()
        if head == key.hexdigest() and all((files / name).is_file() for name in names):
            return [files / name for name in names]
    names = _download(files, pins, platform, version)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("\n".join([key.hexdigest(), *names]) + "\n")
    return [files / name for name in names]


def _download(
    files: Path, pins: list[str], platform: Platform, version: tuple[int, int]
) -> list[str]:
    files.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=files.parent, prefix="download-") as scratch:
        requirements_file = Path(scratch) / "requirements.txt"
        requirements_file.write_text("\n".join(pins) + "\n")
        target = Path(scratch) / "wheels"
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary=:all:", "--implementation", "cp", "--dest", str(target)]
        command += ["--python-version", f"{version[0]}.{version[1]}"]
        for tag in platform.wheel_tags:
            command += ["--platform", tag]
        command += ["--requirement", str(requirements_file)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            said = [line for line in done.stderr.splitlines() if not _NOISE.match(line)]
            raise DownloadFailed(
                f"pip download for {platform.name} on CPython {version[0]}.{version[1]} "
                "failed:\n" + "\n".join(said[-15:])
            )
        names = sorted(path.name for path in target.glob("*.whl"))
        for name in names:
            if not (files / name).is_file():
                shutil.move(target / name, files / name)
    return names


def floor(wheels: list[Path], platform: Platform) -> tuple[int, int] | None:
    """The oldest glibc (Linux) or macOS that every wheel loads on."""
    floors = [_wheel_floor(wheel.name, platform) for wheel in wheels]
    known = [f for f in floors if f is not None]
    return max(known) if known else None


def _wheel_floor(name: str, platform: Platform) -> tuple[int, int] | None:
    """The lowest system version among one wheel's platform tags; None for pure wheels."""
    tags = parse_wheel_filename(name)[3]
    versions = []
    for tag in tags:
        if tag.platform == "any":
            return None
        versions.append(_tag_floor(tag.platform, platform))
    return min(v for v in versions if v is not None)


def _tag_floor(tag: str, platform: Platform) -> tuple[int, int] | None:
    if platform.system == "linux":
        legacy = LEGACY_MANYLINUX.get(tag.split("_")[0])
        if legacy:
            return legacy
        match = re.match(r"manylinux_(\d+)_(\d+)_", tag)
    else:
        match = re.match(r"macosx_(\d+)_(\d+)_", tag)
    return (int(match.group(1)), int(match.group(2))) if match else None

"""The locked runtime set as wheels for one platform and Python version, downloaded once.

``pip download --only-binary=:all: --platform … --python-version …`` picks the wheels; they
are kept in the per-user cache (:mod:`onefile.usercache`: ``wheels/files/``, one copy of
each, shared by every platform, version and checkout) with a record per platform, version
and key: the requirements and the accepted tags, so a changed lock file never reads an old
record. While the record is there and every file in it has the digest it names, a build never
asks the index: offline and quick, in a fresh clone too. A file that does not match (cut
short, changed) is downloaded again.

Each pip run spends most of its time asking the index about every package, so the first
platform's versions are resolved in full, and the others only for the packages that got a
compiled wheel there: a package that is pure Python on Linux x86-64 for every version is
taken as the same pure wheel everywhere.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from onefile import usercache
from onefile.platforms import Platform

LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
# pip's configuration on some machines adds unusable find-links locations; it says so once
# per package, which buries the answer.
_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")


class DownloadFailed(Exception):
    """pip could not find or fetch a wheel of the locked set for a platform."""


def cache_dir() -> Path:
    return usercache.root() / "wheels"


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


Job = tuple[Platform, tuple[int, int]]


def resolve_all(store: Path, lock: Path, jobs: list[Job]) -> dict[Job, list[Path]]:
    """The wheels for each (platform, version), four pip runs at a time where not stored."""
    first = [job for job in jobs if job[0] == jobs[0][0]]
    done = _in_parallel(store, lock, first, {})
    pure = {
        canonicalize_name(parse_wheel_filename(path.name)[0]): path
        for paths in done.values()
        for path in paths
        if path.name.endswith("-none-any.whl")
    }
    compiled = {
        canonicalize_name(parse_wheel_filename(path.name)[0])
        for paths in done.values()
        for path in paths
        if not path.name.endswith("-none-any.whl")
    }
    shared = {str(name): path for name, path in pure.items() if name not in compiled}
    rest = [job for job in jobs if job not in done]
    return done | _in_parallel(store, lock, rest, shared)


def _in_parallel(
    store: Path, lock: Path, jobs: list[Job], shared: dict[str, Path]
) -> dict[Job, list[Path]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {job: pool.submit(resolve, store, lock, *job, shared) for job in jobs}
        return {job: future.result() for job, future in futures.items()}


def resolve(
    store: Path,
    lock: Path,
    platform: Platform,
    version: tuple[int, int],
    shared: dict[str, Path] | None = None,
) -> list[Path]:
    """The wheels of one platform and version: ``shared`` pure wheels plus pip's choice."""
    shared = {n: p for n, p in (shared or {}).items() if n not in _overridden(platform)}
    pins = [pin for pin in requirements(lock, platform) if _pin_name(pin) not in shared]
    given = sorted(path.name for path in shared.values())
    key = hashlib.sha256("\n".join([*pins, *given, *platform.wheel_tags, repr(version)]).encode())
    name = f"{platform.name}-cp{version[0]}{version[1]}-{key.hexdigest()[:32]}.txt"
    record, files = store / "resolved" / name, store / "files"
    names = _read_record(record, files)
    if names is None:
        names = sorted([*_download(files, pins, platform, version), *given])
        _write_record(record, files, names)
    return [files / name for name in names]


def _read_record(record: Path, files: Path) -> list[str] | None:
    """The wheel names a record lists, when every one is stored with the digest it names."""
    try:
        lines = record.read_text().splitlines()
    except FileNotFoundError:
        return None
    names = []
    for line in lines:
        digest, _, name = line.partition(" ")
        if not name or _digest(files / name) != digest:
            return None
        names.append(name)
    return names


def _write_record(record: Path, files: Path, names: list[str]) -> None:
    lines = [f"{_digest(files / name)} {name}\n" for name in names]
    usercache.write_atomically(record, "".join(lines).encode())


def _digest(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def _pin_name(pin: str) -> str:
    return canonicalize_name(pin.partition("==")[0])


def _overridden(platform: Platform) -> set[str]:
    return {canonicalize_name(o.name) for o in platform.overrides}


def _download(
    files: Path, pins: list[str], platform: Platform, version: tuple[int, int]
) -> list[str]:
    """pip's choice of wheels for ``pins``, renamed into ``files`` (replacing what is there:
    an old copy may be the damaged one); their names."""
    files.mkdir(parents=True, exist_ok=True)
    usercache.remove_older(files.parent, "download-*", usercache.ABANDONED_SECS)
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
            os.replace(target / name, files / name)
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

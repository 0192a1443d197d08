"""The files for the other platforms: built here, never run here.

What can be checked without their machines: each carries the wheels of its own platform
tags for every supported Python (and the floor it promises), every compiled file is for its
CPU, no file compiled on this machine (Aether's own extensions) went in, and run here each
one refuses in one line and names the file for this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dist_support import Installed, Release, payload, user_env
from packaging.utils import parse_wheel_filename

from onefile import archive
from onefile.platforms import PLATFORMS, PYTHONS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
ALL = list(PLATFORMS)
FOREIGN = [name for name in ALL if name != "linux-x86_64"]
FLOORS = {
    "linux-x86_64": ("glibc", [2, 17]),
    "linux-aarch64": ("glibc", [2, 27]),  # psycopg-binary's arm64 wheels
    "macos-arm64": ("macos", [11, 0]),
    "macos-x86_64": ("macos", [10, 15]),
}
COMPILED = {"zstandard", "blake3", "cryptography", "cffi", "psycopg-binary", "orjson", "pyyaml"}


@pytest.mark.parametrize("name", ALL)
def test_wheels_are_the_platform_s_for_every_python(release: Release, name: str) -> None:
    platform = PLATFORMS[name]
    info = archive.build_info(release.file(name))
    assert info["platform"] == name
    compiled: dict[str, set[str]] = {}
    for wheel in info["wheels"]:
        project, _, _, tags = parse_wheel_filename(wheel)
        platforms = {tag.platform for tag in tags}
        if platforms == {"any"}:
            continue
        assert platforms & set(platform.wheel_tags), f"{wheel} is not for {name}"
        compiled.setdefault(project, set()).update(f"{t.interpreter}-{t.abi}" for t in tags)
    assert COMPILED <= set(compiled)
    every_python = {f"cp{a}{b}-cp{a}{b}" for a, b in PYTHONS}
    for project, abis in compiled.items():
        # A stable-ABI (abi3) wheel serves every version from its minimum on.
        assert every_python <= abis or "cp311-abi3" in abis, f"{project}: {sorted(abis)}"


@pytest.mark.parametrize("name", ALL)
def test_the_floor_is_the_oldest_wheel_s_and_the_entry_checks_it(
    release: Release, name: str
) -> None:
    target = archive.build_info(release.file(name))["target"]
    kind, floor = FLOORS[name]
    assert target[kind] is not None and target[kind] <= floor
    assert target["pythons"] == [list(version) for version in PYTHONS]


@pytest.mark.parametrize("name", ALL)
def test_compiled_files_are_for_the_platform_s_cpu(release: Release, name: str) -> None:
    platform = PLATFORMS[name]
    target = archive.build_info(release.file(name))["target"]
    seen = 0
    for member in payload(release.file(name)):
        if not member.name.endswith(".so"):
            continue
        seen += 1
        assert platform.machine in member.arches, member.name
        if platform.system == "linux" and not member.name.startswith("aether/"):
            assert member.glibc is None or list(member.glibc) <= target["glibc"], member.name
        for a, b in PYTHONS:
            other = f"cpython-{a}{b}-"
            if other in member.name:
                assert member.name.endswith(f"{platform.so_suffix}.so"), member.name
    assert seen > 20


@pytest.mark.parametrize("name", FOREIGN)
def test_no_file_compiled_on_this_machine_goes_in(release: Release, name: str) -> None:
    names = [member.name for member in payload(release.file(name))]
    assert not [n for n in names if n.startswith("aether/") and n.endswith(".so")]
    assert not [n for n in names if "x86_64-linux-gnu" in n and name != "linux-x86_64"]
    assert archive.build_info(release.file(name))["native_extensions"] == []


def test_this_machine_s_file_carries_aether_s_extensions_for_every_python(
    release: Release,
) -> None:
    native = archive.build_info(release.file("linux-x86_64"))["native_extensions"]
    for module in ("_batchread", "_manifest", "_natives", "_scanfolder"):
        for a, b in PYTHONS:
            assert f"aether/pack/{module}.cpython-{a}{b}-x86_64-linux-gnu.so" in native


def test_macos_x86_64_carries_the_last_cryptography_with_its_wheels(release: Release) -> None:
    info = archive.build_info(release.file("macos-x86_64"))
    assert [w for w in info["wheels"] if w.startswith("cryptography-48.0.1-")]
    assert "cryptography" in info["overrides"]
    for name in ("linux-x86_64", "linux-aarch64", "macos-arm64"):
        other = archive.build_info(release.file(name))
        assert other["overrides"] == {}
        assert not [w for w in other["wheels"] if w.startswith("cryptography-48.")]


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("linux-aarch64", "found Linux x86_64; download aether-linux-x86_64 instead"),
        ("macos-arm64", "found Linux x86_64; download aether-linux-x86_64 instead"),
    ],
)
def test_run_here_a_foreign_file_names_the_right_one(
    release: Release, pythons: dict, tmp_path: Path, name: str, hint: str
) -> None:
    python = pythons[PYTHONS[-1]]
    app = Installed(release.file(name), python, user_env(tmp_path, python))
    done = app.run("--version")
    assert done.returncode == 10
    assert done.stderr.count("\n") == 1
    assert done.stderr.rstrip().endswith(hint)

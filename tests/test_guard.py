"""The interpreter check that runs before anything else: what it accepts, what it says.

``problem`` is pure (what a build needs, what a process runs on); the end of the file runs
the real check under interpreters Aether does not support, as a user would meet it.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import pytest

from aether.guard import SUPPORTED_PYTHONS, needs, observed, problem

ROOT = Path(__file__).resolve().parent.parent
LINUX_X86_64 = {
    "name": "aether-linux-x86_64",
    "title": "Linux x86-64",
    "pythons": [[3, 11], [3, 12], [3, 13]],
    "system": "linux",
    "machine": "x86_64",
    "glibc": [2, 17],
    "macos": None,
}
MACOS_ARM64 = {
    **LINUX_X86_64,
    "name": "aether-macos-arm64",
    "title": "macOS arm64",
    "system": "darwin",
    "machine": "arm64",
    "glibc": None,
    "macos": [11, 0],
}
PACKAGE = {"name": "aether", "pythons": SUPPORTED_PYTHONS}


def found(**changes: object) -> dict:
    """A 64-bit CPython 3.12 on Linux x86-64 with glibc 2.36, with ``changes``."""
    base = {
        "implementation": "cpython",
        "version": (3, 12, 1),
        "executable": "/usr/bin/python3",
        "system": "linux",
        "machine": "x86_64",
        "bits": 64,
        "glibc": (2, 36),
        "macos": None,
    }
    return {**base, **changes}


@pytest.mark.parametrize("version", [(3, 11, 0), (3, 12, 1), (3, 13, 9)])
def test_every_supported_version_passes(version: tuple[int, int, int]) -> None:
    assert problem(LINUX_X86_64, found(version=version)) is None
    assert problem(PACKAGE, found(version=version)) is None


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"version": (3, 10, 13)}, "CPython 3.10.13 (/usr/bin/python3)"),
        ({"version": (3, 14, 0)}, "CPython 3.14.0 (/usr/bin/python3)"),
        ({"implementation": "pypy", "version": (3, 11, 13)}, "PyPy 3.11.13 (/usr/bin/python3)"),
        ({"machine": "aarch64"}, "Linux aarch64; download aether-linux-aarch64 instead"),
        ({"bits": 32}, "Linux x86_64 (a 32-bit Python)"),
        ({"glibc": None}, "Linux x86_64 with no glibc (musl?)"),
        ({"glibc": (2, 12)}, "Linux x86_64 with glibc 2.12"),
        ({"system": "darwin", "machine": "arm64"}, "macOS arm64; download aether-macos-arm64"),
        ({"system": "win32", "machine": "AMD64", "glibc": None}, "Windows AMD64"),
    ],
)
def test_refusals_name_what_is_needed_and_what_was_found(changes: dict, what: str) -> None:
    message = problem(LINUX_X86_64, found(**changes))
    assert message is not None
    needed = "CPython 3.11, 3.12 or 3.13 on Linux x86-64 (glibc 2.17+)"
    assert message.startswith(f"aether-linux-x86_64 needs {needed}; found {what}")


def test_glibc_at_the_floor_passes() -> None:
    assert problem(LINUX_X86_64, found(glibc=(2, 17))) is None


def test_macos_floor() -> None:
    mac = found(system="darwin", machine="arm64", glibc=None, macos=(10, 15))
    assert problem(MACOS_ARM64, mac) == (
        "aether-macos-arm64 needs CPython 3.11, 3.12 or 3.13 on macOS arm64 (macOS 11.0+); "
        "found macOS 10.15"
    )
    assert problem(MACOS_ARM64, {**mac, "macos": (14, 0)}) is None


def test_the_package_checks_the_python_only() -> None:
    """A pip install runs on whatever platform pip found compiled parts for."""
    assert problem(PACKAGE, found(system="freebsd14", machine="amd64", glibc=None)) is None
    assert problem(PACKAGE, found(version=(3, 10, 0))) == (
        "aether needs CPython 3.11, 3.12 or 3.13; found CPython 3.10.0 (/usr/bin/python3)"
    )


def test_needs_with_one_version() -> None:
    assert needs({**LINUX_X86_64, "pythons": [[3, 12]]}) == (
        "CPython 3.12 on Linux x86-64 (glibc 2.17+)"
    )


def test_observed_describes_this_process() -> None:
    here = observed()
    assert problem(PACKAGE, here) is None
    assert here["implementation"] == "cpython"
    assert here["bits"] == 64
    if here["system"] == "linux":
        assert here["glibc"] and here["glibc"] >= (2, 17)


def pyenv_python(version: str) -> str | None:
    """An installed interpreter Aether does not support (pyenv's folder, as on this machine)."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found_ = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", "python")))
    return found_[-1] if found_ else None


@pytest.mark.parametrize("version", ["3.10", "2.7"])
def test_python_m_aether_refuses_an_old_python_in_one_line(version: str) -> None:
    python = pyenv_python(version)
    if python is None:
        pytest.skip(f"no Python {version} installed here")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [python, "-m", "aether", "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 10
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("aether: error: aether needs CPython 3.11, 3.12 or 3.13; ")
    assert f"found CPython {version}." in done.stderr

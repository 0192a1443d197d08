"""Find a real CPython binary for each supported version on this machine.

The build compiles bytecode with each version (the ``.pyc`` format changes with every minor
release) and, for the host platform, our C extensions. ``python3.X`` on PATH is tried first,
then pyenv's versions folder: pyenv's shims stand on PATH for every installed version but
run only the selected ones, so each candidate is asked for its version.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

PROBE = "import sys; print(sys.implementation.name, *sys.version_info[:2]); print(sys.executable)"


class MissingInterpreter(Exception):
    """No working CPython of a needed version was found."""


def find(version: tuple[int, int], given: dict[tuple[int, int], str] | None = None) -> Path:
    """The real binary of CPython ``version`` (``given`` overrides the search)."""
    dotted = f"{version[0]}.{version[1]}"
    candidates = [given[version]] if given and version in given else _candidates(dotted)
    for candidate in candidates:
        found = _probe(candidate)
        if found is not None and found[0] == ("cpython", version):
            return found[1]
    raise MissingInterpreter(
        f"no working python{dotted} found (PATH, then pyenv); install CPython {dotted} or "
        f"name one with --interpreter {dotted}=PATH"
    )


def find_all(
    versions: tuple[tuple[int, int], ...], given: dict[tuple[int, int], str] | None = None
) -> dict[tuple[int, int], Path]:
    return {version: find(version, given) for version in versions}


def _candidates(dotted: str) -> list[str]:
    found = [path for path in [shutil.which(f"python{dotted}")] if path]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    pattern = os.path.join(pyenv_root, "versions", f"{dotted}.*", "bin", f"python{dotted}")
    found += sorted(glob.glob(pattern), reverse=True)
    return found


def _probe(command: str) -> tuple[tuple[str, tuple[int, int]], Path] | None:
    try:
        done = subprocess.run(
            [command, "-S", "-c", PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    lines = done.stdout.split("\n")
    if done.returncode != 0 or len(lines) < 2:
        return None
    name, major, minor = lines[0].split()
    return (name, (int(major), int(minor))), Path(lines[1])

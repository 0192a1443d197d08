"""Session fixtures for the single files: every platform's file built once per run, and each
supported interpreter found on this machine (python3.11, 3.12 and 3.13; PATH, then pyenv)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dist_support import Release

from onefile import interpreters
from onefile.platforms import PYTHONS


@pytest.fixture(scope="session")
def pythons() -> dict[tuple[int, int], Path]:
    try:
        return interpreters.find_all(PYTHONS)
    except interpreters.MissingInterpreter as exc:
        pytest.fail(f"the single-file tests need every supported CPython: {exc}")


@pytest.fixture(scope="session")
def release(pythons: dict, release_build: tuple[Path, dict[str, str]]) -> Release:
    """``scripts/build-zipapp --platform all --sums``, signed with a key made for the run
    (``plugins.release_build``: once per run, started early under xdist)."""
    folder, built = release_build
    return Release(folder=folder, public_key_pem=built["pem"], build_log=built["log"])

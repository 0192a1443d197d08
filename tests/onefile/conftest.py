"""Session fixtures for the single files: every platform's file built once, and each supported
interpreter found on this machine (python3.11, 3.12 and 3.13; PATH, then pyenv)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dist_support import ROOT, Release

from aether.pack.signing import generate_keypair
from onefile import interpreters
from onefile.platforms import PYTHONS


@pytest.fixture(scope="session")
def pythons() -> dict[tuple[int, int], Path]:
    try:
        return interpreters.find_all(PYTHONS)
    except interpreters.MissingInterpreter as exc:
        pytest.fail(f"the single-file tests need every supported CPython: {exc}")


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory, pythons: dict) -> Release:
    """``scripts/build-zipapp --platform all --sums``, signed with a key made for the session."""
    folder = tmp_path_factory.mktemp("dist")
    seed, _ = generate_keypair()
    env = {**os.environ, "AETHER_RELEASE_KEY": seed}
    command = [sys.executable, str(ROOT / "scripts" / "build-zipapp"), "--platform", "all"]
    command += ["--out-dir", str(folder), "--sums"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    pem = done.stdout[done.stdout.index("-----BEGIN PUBLIC KEY-----") :]
    pem = pem[: pem.index("-----END PUBLIC KEY-----") + len("-----END PUBLIC KEY-----")]
    return Release(folder=folder, public_key_pem=pem + "\n", build_log=done.stdout)

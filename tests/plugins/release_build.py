"""pytest plugin: every platform's single file built once per run, for ``tests/onefile``.

``scripts/build-zipapp --platform all --sums``, signed with a key made for the run, writes
into the run's shared folder ``dist/``. Under pytest-xdist the controller, which runs no test,
starts the build in the background once the workers have collected a test of
``tests/onefile``, so it overlaps the tests that come first; the ``release_build`` fixture of
each worker waits for it on the same lock (``plugins.run_shared.once_per_run``). A run without
xdist builds when the fixture is first asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from aether.pack.signing import generate_keypair
from plugins.run_shared import hold_lock, lock_of, once_per_run, outcome_of, run_folder

NAME = "dist"
BUILD_TIMEOUT_SECS = 1200
ROOT = Path(__file__).resolve().parents[2]
_BACKGROUND = pytest.StashKey["Background"]()


def start_build(folder: Path, output: int | IO[bytes]) -> subprocess.Popen[bytes]:
    seed, _ = generate_keypair()
    command = [sys.executable, str(ROOT / "scripts" / "build-zipapp"), "--platform", "all"]
    command += ["--out-dir", str(folder), "--sums"]
    env = {**os.environ, "AETHER_RELEASE_KEY": seed}
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)


def build_outcome(code: int, output: str) -> dict[str, str]:
    """What the fixture hands on: the public key the sums were signed with, and the log."""
    assert code == 0, f"scripts/build-zipapp failed ({code}):\n{output[-6000:]}"
    pem = output[output.index("-----BEGIN PUBLIC KEY-----") :]
    pem = pem[: pem.index("-----END PUBLIC KEY-----") + len("-----END PUBLIC KEY-----")]
    return {"pem": pem + "\n", "log": output}


def build_here(folder: Path) -> dict[str, str]:
    process = start_build(folder, subprocess.PIPE)
    output, _ = process.communicate(timeout=BUILD_TIMEOUT_SECS)
    return build_outcome(process.returncode, output.decode(errors="replace"))


class Background:
    """The build the xdist controller started; it holds the run's lock until it is done."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = hold_lock(lock_of(folder))
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder.with_name(NAME + ".log").open("w+b")
        self.process = start_build(folder, self.log)
        self.thread = threading.Thread(target=self._finish, daemon=True)
        self.thread.start()

    def _finish(self) -> None:
        outcome: dict[str, Any]
        try:
            self.process.wait(timeout=BUILD_TIMEOUT_SECS)
            self.log.seek(0)
            output = self.log.read().decode(errors="replace")
            outcome = {"value": build_outcome(self.process.returncode, output)}
        except BaseException as exc:  # recorded: every worker reports it
            self.process.kill()
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        outcome_of(self.folder).write_text(json.dumps(outcome))
        self.lock.close()  # the waiting workers go on and read the outcome

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.thread.join(timeout=30)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    """On the xdist controller, before any test is sent to a worker."""
    config: pytest.Config = node.config
    if _BACKGROUND in config.stash or not any(i.startswith("tests/onefile/") for i in ids):
        return
    folder = run_folder(config._tmp_path_factory) / NAME  # type: ignore[attr-defined]
    config.stash[_BACKGROUND] = Background(folder)


def pytest_sessionfinish(session: pytest.Session) -> None:
    background = session.config.stash.get(_BACKGROUND, None)
    if background is not None:
        background.stop()


@pytest.fixture(scope="session")
def release_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(folder, {"pem", "log"}) of the run's build: waited for, or made here."""
    return once_per_run(tmp_path_factory, NAME, build_here)

"""Folders that every process of one test run shares, and work done once per run in them.

Under pytest-xdist each worker is a test session of its own, with its own base temporary
folder (``…/pytest-N/popen-gw0``); session fixtures run once per worker. What is expensive
and the same for all of them (the single files, npm's download cache) lives one level up, in
the run's base folder, made by whichever worker comes first while the others wait on a lock.
Without xdist the run's folder is the session's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest


def worker_id() -> str:
    """``gw0``, ``gw1``… under xdist; ``main`` otherwise."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base folder of the whole run, shared by every worker."""
    base = tmp_path_factory.getbasetemp()
    # A worker's own folder is popen-<id>; a pytest run inside a worker's test has its own.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return base.parent if worker and base.name == f"popen-{worker}" else base


def hold_lock(lock_file: Path) -> IO[str]:
    """An exclusive ``flock`` on ``lock_file`` (made if missing), held until the returned
    file is closed; waits for whoever holds it now."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_file.open("a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``lock_file`` for the block."""
    with hold_lock(lock_file):
        yield


def shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``name`` in the run's folder (made if missing), for caches every worker may fill."""
    folder = run_folder(tmp_path_factory) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def lock_of(folder: Path) -> Path:
    """The lock held while ``folder`` is being made once for the run."""
    return folder.with_name(folder.name + ".lock")


def outcome_of(folder: Path) -> Path:
    """What making ``folder`` gave (JSON ``{"value": …}`` or ``{"error": "…"}``)."""
    return folder.with_name(folder.name + ".json")


def once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Any]
) -> tuple[Path, Any]:
    """``make(folder)`` run by the first worker to get here, for the whole run: the folder and
    what ``make`` returned (JSON), which later workers read back. A ``make`` that raised is
    not retried by each worker in turn: they all fail with its message."""
    folder = run_folder(tmp_path_factory) / name
    outcome = outcome_of(folder)
    with exclusive(lock_of(folder)):
        if not outcome.exists():
            folder.mkdir(parents=True, exist_ok=True)
            try:
                result = {"value": make(folder)}
            except BaseException as exc:
                outcome.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
                raise
            outcome.write_text(json.dumps(result))
    recorded = json.loads(outcome.read_text())
    if "error" in recorded:
        pytest.fail(f"{name}, made once for this run, failed: {recorded['error']}", pytrace=False)
    return folder, recorded["value"]

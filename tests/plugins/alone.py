"""pytest plugin: ``@pytest.mark.alone``, for a test that must not share a moment with others.

A load test (50 deploys at once against a pool of 10 connections with a 5 s wait) measures
the machine as much as the code when the other xdist workers run tests beside it. Every test
holds a shared lock of the run while it runs (setup and teardown included); a test marked
``alone`` holds it exclusively, so it starts once the tests running elsewhere have ended and
no other test starts until it has. A gate in front keeps the waiting test from being starved
by tests that keep starting. Without xdist there is no one else, and nothing is locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest

from plugins.run_shared import run_folder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "alone: runs while no other test of the run does")


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: waiting is not the test's time
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return (yield)
    folder = run_folder(item.config._tmp_path_factory)  # type: ignore[attr-defined]
    mode = fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH
    with (folder / "moment.gate").open("a") as gate, (folder / "moment").open("a") as moment:
        fcntl.flock(gate, mode)
        fcntl.flock(moment, mode)
        if mode == fcntl.LOCK_SH:
            fcntl.flock(gate, fcntl.LOCK_UN)
        return (yield)  # closing the files releases the locks

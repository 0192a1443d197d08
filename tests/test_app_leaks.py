"""The guard against leaked processes (``plugins.app_leaks``): it finds what a test left
running under the session's temporary folders, even where only an ancestor names them, kills
it and fails exactly the test that left it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from aether.worker.runtimes.supervision import start_ticks
from plugins.app_leaks import processes_under, reap

SUPERVISOR_LIKE = """
import subprocess
subprocess.run(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
"""


def test_a_leaking_test_fails_by_name_and_its_process_is_killed(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["plugins.app_leaks"]')
    pytester.makepyfile(
        test_inner="""
        import subprocess

        def test_leaky(tmp_path):  # detached, like an app's supervisor
            subprocess.run(["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 &"], cwd=tmp_path)

        def test_tidy(tmp_path):
            tidy = subprocess.Popen(["sleep", "300"], cwd=tmp_path)
            tidy.kill()
            tidy.wait()
        """
    )
    result = pytester.runpytest_inprocess("-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_inner.py::test_leaky left 1 process(es) running*", "  pid *: sleep 300"]
    )
    assert "test_tidy left" not in result.stdout.str()
    assert processes_under(pytester.path) == []


def test_an_app_below_its_supervisor_is_found_through_its_ancestor(tmp_path: Path) -> None:
    # Like a supervisor: only its output file lies in the folder; its child (the app) names
    # nothing there.
    log = tmp_path / "supervisor.log"
    with log.open("wb") as output:
        parent = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR_LIKE],
            cwd="/",
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    try:
        found = {item.pid: item for item in _eventually_two(tmp_path)}
        assert parent.pid in found
        (child,) = set(found) - {parent.pid}
        reap(tmp_path)
        assert start_ticks(parent.pid) is None or parent.poll() is not None
        assert start_ticks(child) != found[child].started
        assert processes_under(tmp_path) == []
    finally:
        parent.kill()
        parent.wait()


def _eventually_two(root: Path) -> list:
    """The parent and its ``sleep``, once the parent has started it."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = processes_under(root)
        if len(found) == 2:
            return found
        time.sleep(0.02)  # polling for the parent to start it, bounded above
    raise AssertionError(f"expected the parent and its child under {root}: {found}")

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
        from plugins.app_leaks import processes_under
        from plugins.polling import wait_for

        def test_leaky(tmp_path):  # detached, like an app's supervisor
            subprocess.run(["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 &"], cwd=tmp_path)
            # the shell's background child is itself until it has become `sleep 300`
            wait_for(lambda: [p.command for p in processes_under(tmp_path)] == ["sleep 300"])

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


# A run of its own: three processes importing the whole test stack before its first test,
# which a loaded machine can take most of pytest's default 120 s for; its waits have deadlines.
@pytest.mark.timeout(300)
def test_xdist_workers_reap_only_their_own_and_the_controller_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """gw0 leaks a process in a test and another at the end of its session; gw1's process,
    running all the while, is not touched; the run fails naming the late one."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    monkeypatch.setenv("LEAK_SIGNALS", str(tmp_path))
    pytester.makeconftest(
        """
        import os, subprocess
        from pathlib import Path
        import pytest

        pytest_plugins = ["plugins.app_leaks"]

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionfinish(session):
            reaped = Path(os.environ["LEAK_SIGNALS"]) / "reaped"
            worker = getattr(session.config, "workerinput", {}).get("workerid")
            if reaped.exists() and reaped.read_text() == worker:  # not the controller
                base = session.config._tmp_path_factory.getbasetemp()
                subprocess.run(["/bin/sh", "-c", "sleep 301 >/dev/null 2>&1 &"], cwd=base)
        """
    )
    pytester.makepyfile(
        test_inner="""
        import os, subprocess, time
        from pathlib import Path
        import pytest

        SIGNALS = Path(os.environ["LEAK_SIGNALS"])

        @pytest.mark.xdist_group("leaky")
        def test_leaky(tmp_path):
            subprocess.run(["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 &"], cwd=tmp_path)

        @pytest.mark.xdist_group("leaky")
        def test_after_the_reap(tmp_path):  # runs once test_leaky's process was reaped
            (SIGNALS / "reaped").write_text(os.environ["PYTEST_XDIST_WORKER"])

        @pytest.mark.xdist_group("tidy")
        def test_other_worker(tmp_path):
            mine = subprocess.Popen(["sleep", "302"], cwd=tmp_path)
            try:
                deadline = time.monotonic() + 120
                while not (SIGNALS / "reaped").exists():
                    assert time.monotonic() < deadline, "the other worker never reaped"
                    time.sleep(0.02)  # polling for the other worker, bounded above
                assert os.environ["PYTEST_XDIST_WORKER"] != (SIGNALS / "reaped").read_text()
                assert mine.poll() is None  # the other worker's reap left it alone
            finally:
                mine.kill()
                mine.wait()
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
        "-o", "asyncio_default_fixture_loop_scope=function",
    )  # fmt: skip
    result.assert_outcomes(passed=3, errors=1)
    output = result.stdout.str()
    assert "test_inner.py::test_leaky left 1 process(es) running" in output
    assert "processes left running at the end of the session" in output
    assert "sleep 301" in output and "sleep 302" not in output
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert processes_under(pytester.path) == []

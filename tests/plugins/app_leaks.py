"""pytest plugin: no test leaves an app, a supervisor or a server running behind it.

Apps outlive their worker by design (their supervisors are detached), so a test that does not
stop what it started leaves ``node`` processes running for hours, holding ports and uids. After
each test that can make temporary folders, this finds every process that belongs to this
session's temporary folders — its command line names a path in them, or its working directory
or standard output/error lies in them (a supervisor writes to its log file there; bubblewrap
and the app run in a release folder there) — and all their descendants, kills them, and fails
the test, naming what it left. At the end of the session the same check covers what module and
session fixtures left. Processes of other test sessions (another base folder) are never
touched, nor is this pytest process itself: each pytest-xdist worker is a session with a base
folder of its own, so it reaps only its own tests' processes, and what one leaves at its end is
reported by the controller, which fails the run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aether.worker.runtimes.supervision import start_ticks

KILL_DEADLINE_SECS = 15.0
POLL_SECS = 0.05
_BASETEMP = pytest.StashKey[Path]()
_WORKER_LEAKS = pytest.StashKey[list[str]]()  # on the xdist controller
_OUTPUT_KEY = "app_leaks"
# A test whose fixtures include one of these can have made folders under the session's base.
_TMP_FIXTURES = {"tmp_path", "tmp_path_factory", "tmpdir", "tmpdir_factory"}


@dataclass(frozen=True)
class Leftover:
    pid: int
    started: int  # clock ticks since boot: tells this process from a later one with its pid
    command: str


def processes_under(root: Path) -> list[Leftover]:
    """Processes (not this one) that refer to a path under ``root``, and their descendants."""
    prefix = str(root.resolve()) + "/"
    parents: dict[int, int] = {}
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        command, ppid = _command(pid), _ppid(pid)
        if command is None or ppid is None:
            continue  # ended meanwhile, or a zombie
        parents[pid] = ppid
        if prefix in command or _points_under(pid, prefix):
            found[pid] = command
    grew = True
    while grew:  # the app below bubblewrap runs where only its ancestors name the folder
        descendants = {p for p, parent in parents.items() if parent in found and p not in found}
        grew = bool(descendants)
        found.update({p: _command(p) or "?" for p in descendants})
    leftovers = [Leftover(pid, start_ticks(pid) or 0, found[pid]) for pid in sorted(found)]
    return [item for item in leftovers if item.started]


def kill(leftovers: list[Leftover]) -> None:
    """SIGKILL each (unless its pid now names another process) and wait until all are gone."""
    for item in leftovers:
        if start_ticks(item.pid) == item.started:
            os.kill(item.pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_DEADLINE_SECS
    while any(start_ticks(item.pid) == item.started for item in leftovers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"leftover processes survived SIGKILL: {leftovers}")
        time.sleep(POLL_SECS)  # polling for the kernel to finish them, bounded above


def reap(root: Path) -> list[Leftover]:
    leftovers = processes_under(root)
    if leftovers:
        kill(leftovers)
    return leftovers


def describe(leftovers: list[Leftover]) -> str:
    return "\n".join(f"  pid {item.pid}: {item.command[:300]}" for item in leftovers)


def _command(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip() or None


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if not fields or fields[0] in ("Z", "X") else int(fields[1])


def _points_under(pid: int, prefix: str) -> bool:
    for link in ("cwd", "fd/1", "fd/2"):
        try:
            if (os.readlink(f"/proc/{pid}/{link}") + "/").startswith(prefix):  # root itself too
                return True
        except OSError:
            continue
    return False


@pytest.fixture(scope="session", autouse=True)
def _session_basetemp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    request.config.stash[_BASETEMP] = tmp_path_factory.getbasetemp()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    root = item.config.stash.get(_BASETEMP, None)
    if root is None or not _TMP_FIXTURES & set(getattr(item, "fixturenames", ())):
        return (yield)
    try:
        result = yield
    except BaseException:
        reap(root)  # the teardown's own error is the report
        raise
    leaked = reap(root)
    if leaked:
        shared = nextitem is None or nextitem.parent is not item.parent
        pytest.fail(
            f"{item.nodeid}{' (or a fixture shared with it)' if shared else ''} left "
            f"{len(leaked)} process(es) running (killed now); stop the apps and servers a test "
            f"starts, e.g. LocalRuntime.stop_apps():\n{describe(leaked)}",
            pytrace=False,
        )
    return result


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    root = config.stash.get(_BASETEMP, None)
    leaked = reap(root) if root is not None else []
    messages = config.stash.get(_WORKER_LEAKS, [])
    if leaked:
        message = (
            f"processes left running at the end of the session (killed now):\n{describe(leaked)}"
        )
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: its exit status is not the run's
            workeroutput[_OUTPUT_KEY] = message
            return
        messages.append(message)
    if not messages:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for message in messages:
        if reporter is not None:
            reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """The xdist controller collects what each worker left at the end of its session."""
    output = getattr(node, "workeroutput", {})
    if output.get(_OUTPUT_KEY):
        config = node.config  # type: ignore[attr-defined]
        worker = getattr(node, "workerinput", {}).get("workerid", "?")
        config.stash.setdefault(_WORKER_LEAKS, []).append(f"[{worker}] {output[_OUTPUT_KEY]}")

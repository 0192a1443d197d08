"""One release's app process, as the worker sees it: a handle on its supervisor.

The app runs under a supervisor process (:mod:`aether.worker.runtimes.shim`) that the worker
starts detached, so the app and its logs survive the worker: SIGTERM or ``kill -9`` of the
worker leaves them running, and the next worker adopts them from their run records
(:meth:`AppProcess.adopt`). The handle starts the supervisor, waits for the health gate,
arms crash restarts, turns the supervisor's exits and restarts into events, and stops it.

A launcher (the supervisor before it has read its spec) is started ahead of need
(:func:`ready_spare`): starting Python and importing the supervisor costs tens of
milliseconds of CPU, far more wall time on a busy host, and that should not sit between a
release being ready and its app starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aether
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.health import http_status, is_healthy
from aether.worker.runtimes.logfiles import recent_lines
from aether.worker.runtimes.supervision import RunRecord, Spec, read_record, supervisor_alive

if TYPE_CHECKING:
    from aether.worker.runtimes.standby import Standby

log = logging.getLogger(__name__)

RECENT_LINES = 20
# The health gate asks this often while the app starts: a refused connection costs
# microseconds, and every millisecond between the app listening and the gate seeing it is
# added to the deploy (the mean wait is half the interval).
HEALTH_POLL_SECS = 0.005
STOP_POLL_SECS = 0.02
# A waiting launcher writes its run record within milliseconds of getting its spec.
RECORD_POLL_SECS = 0.005
WATCH_POLL_SECS = 0.25
SUPERVISOR_START_SECS = 15.0  # a loaded machine may take this long to start Python
STOP_MARGIN_SECS = 5.0  # beyond the app's grace, for the supervisor to finish
SPARE_EXIT_SECS = 5.0  # for a spare launcher to end once its stdin is closed
FINISHED = ("exited", "stopped")

EventCallback = Callable[[str, str], Awaitable[None]]


def supervisor_argv() -> list[str]:
    """How to run the supervisor with this interpreter (``-S``: only the standard library
    and aether itself, found through PYTHONPATH, also inside the zipapp)."""
    return [sys.executable, "-S", "-m", "aether.worker.runtimes.shim"]


def supervisor_env() -> dict[str, str]:
    package_root = str(Path(aether.__file__).resolve().parent.parent)
    return {"PYTHONPATH": package_root, "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}


_spare_lock = threading.Lock()
_spare: subprocess.Popen[bytes] | None = None


def _launch() -> subprocess.Popen[bytes]:
    """A launcher waiting on stdin for its spec; its output goes to the supervisor's log once
    it has the spec, to the pipe read by :meth:`AppProcess._await_record` before that."""
    try:
        return subprocess.Popen(
            supervisor_argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=supervisor_env(),
            start_new_session=True,  # not in the worker's group: Ctrl-C spares it
        )
    except OSError as exc:
        raise Fatal(f"cannot start the app's supervisor: {exc}") from exc


def ready_spare() -> None:
    """Start a launcher for the next :meth:`AppProcess.spawn` unless one waits already.
    Called when nothing is starting (the runtime's start, after a health gate passed)."""
    global _spare
    with _spare_lock:
        if _spare is not None and _spare.poll() is None:
            return
        _discard(_spare)
        _spare = _launch()


def take_launcher() -> subprocess.Popen[bytes]:
    """The spare launcher when one is alive, else a new one."""
    global _spare
    with _spare_lock:
        launcher, _spare = _spare, None
    if launcher is not None and launcher.poll() is None:
        return launcher
    _discard(launcher)
    return _launch()


def close_spare() -> None:
    """End the spare launcher (an empty spec makes it exit at once)."""
    global _spare
    with _spare_lock:
        launcher, _spare = _spare, None
    _discard(launcher)


def _discard(launcher: subprocess.Popen[bytes] | None) -> None:
    if launcher is None:
        return
    for stream in (launcher.stdin, launcher.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        launcher.wait(timeout=SPARE_EXIT_SECS)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()


class AppProcess:
    """A supervised app serving one release on one port."""

    def __init__(self, spec: Spec | None, record_path: Path, port: int, health_path: str | None):
        self.spec = spec
        self.record_path = record_path
        self.port = port
        self.health_path = health_path
        self.record: RunRecord | None = None
        self.restarts = 0
        self._watch: asyncio.Task[None] | None = None
        self._seen = (0, 0)  # (exits, restarts) already reported
        self.probed: tuple[float, str] | None = None  # (monotonic time, health) of the last ask

    @classmethod
    def adopt(cls, record_path: Path, record: RunRecord, health_path: str | None = None):
        """A handle on a supervisor an earlier worker started."""
        process = cls(None, record_path, record.port, health_path)
        process.record = record
        process.restarts = record.restarts
        process._seen = (record.exits, record.restarts)
        return process

    @property
    def instance(self) -> int:
        """Which of its release's processes this is (0 … replicas - 1)."""
        if self.record is not None:
            return self.record.instance
        return self.spec.instance if self.spec is not None else 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def supervisor_alive(self) -> bool:
        return self.record is not None and supervisor_alive(self.record)

    @property
    def alive(self) -> bool:
        """The app is up: its supervisor lives and reports it running."""
        self._refresh()
        return self.supervisor_alive and self.record is not None and self.record.state == "running"

    def _refresh(self) -> RunRecord | None:
        record = read_record(self.record_path)
        if record is not None and (self.record is None or record.shim_pid == self.record.shim_pid):
            self.record = record
        return self.record

    async def spawn(self) -> None:
        """Start the supervisor and wait until it has written its run record."""
        await self._clear_record()
        shim_log = self.record_path.with_suffix(".supervisor.log")
        assert self.spec is not None
        spec = self.spec.to_json().encode()
        launcher = take_launcher()
        if not _hand_over(launcher, spec):  # a spare that died meanwhile: start one now
            _discard(launcher)
            launcher = _launch()
            _hand_over(launcher, spec)  # (when it fails too, _await_record says why)
        await self._await_record(launcher, shim_log)

    async def spawn_in(self, standby: Standby, entry: list[str]) -> str | None:
        """Hand the release to a standby instead of starting it: None once the standby's
        supervisor runs it (its run record is written), else why not (nothing runs)."""
        await self._clear_record()
        assert self.spec is not None
        why = await standby.activate(self.spec, entry)
        if why is not None:
            return why
        record = read_record(self.record_path)
        if record is None or record.launch_id != self.spec.launch_id:
            return "the standby wrote no run record"  # (its supervisor stops without one)
        self.record = record
        return None

    async def _clear_record(self) -> None:
        """Make way for this start: a new launch id, and no supervisor left on the record."""
        assert self.spec is not None
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        stray = read_record(self.record_path)
        if stray is not None and supervisor_alive(stray):
            # This release runs already under a supervisor this worker did not adopt: one
            # record names one supervisor, so stop it rather than lose track of it.
            await AppProcess.adopt(self.record_path, stray).stop(self.spec.grace_secs)
        self.record_path.unlink(missing_ok=True)
        self.spec = dataclasses.replace(self.spec, launch_id=uuid.uuid4().hex)

    async def _await_record(self, launcher: subprocess.Popen[bytes], shim_log: Path) -> None:
        """Reap the launcher (it forks the supervisor and exits) and wait for the record."""
        assert self.spec is not None  # spawn() set it
        launch_id = self.spec.launch_id
        deadline = time.monotonic() + SUPERVISOR_START_SECS
        assert self.spec is not None
        while True:
            launched = launcher.poll()
            record = read_record(self.record_path)
            if record is not None and record.launch_id == launch_id and launched == 0:
                self.record = record
                _discard(launcher)
                return
            if launched not in (None, 0) or time.monotonic() > deadline:
                if launched is None:
                    launcher.kill()
                    launcher.wait()
                raise Fatal(
                    "the app's supervisor did not start: "
                    + (" | ".join(_launch_output(launcher, shim_log)) or "no output")
                )
            await asyncio.sleep(RECORD_POLL_SECS)

    def failure_detail(self) -> str:
        logs_dir = self.record_path.parent.parent / "logs"
        deployment_id = self.record.deployment_id if self.record else self.record_path.stem
        recent = recent_lines(logs_dir, deployment_id, RECENT_LINES)
        lines = [line for line in recent if line.strip()]
        return ("; last output: " + " | ".join(lines[-10:])) if lines else "; no output"

    async def wait_healthy(self, deadline: float) -> None:
        """Return once the app answers HTTP; Fatal when it exits or the deadline passes."""
        path = self.health_path or "/"
        while True:
            record = self._refresh()
            if record is None or record.state in FINISHED or not self.supervisor_alive:
                code = record.exit_code if record else None
                raise Fatal(
                    f"process exited with code {code} before answering HTTP" + self.failure_detail()
                )
            status = await http_status(self.port, path, timeout=1.0)
            if is_healthy(status, self.health_path) and self.alive:
                return
            if time.monotonic() >= deadline:
                seen = "no answer" if status is None else f"HTTP {status}"
                raise Fatal(
                    f"not healthy in time: GET {path} on port {self.port} gave {seen}"
                    + self.failure_detail()
                )
            await asyncio.sleep(HEALTH_POLL_SECS)

    def arm(self) -> None:
        """From now on the supervisor restarts the app after a crash (past its health gate)."""
        self._signal(signal.SIGUSR1)

    def supervise(self, on_event: EventCallback) -> None:
        """Arm crash restarts in the supervisor and report its exits and restarts."""
        self.arm()
        self._watch = asyncio.create_task(self._watch_loop(on_event))

    async def _watch_loop(self, on_event: EventCallback) -> None:
        while True:
            await asyncio.sleep(WATCH_POLL_SECS)
            record = self._refresh()
            if record is None:
                continue
            exits, restarts = self._seen
            if record.exits > exits:
                detail = f"exit code {record.exit_code}{self.failure_detail()}"
                await _report(on_event, "crashed", detail)
            if record.restarts > restarts:
                self.restarts = record.restarts
                await _report(on_event, "restarted", f"restart {record.restarts}")
            self._seen = (record.exits, record.restarts)
            if not self.supervisor_alive:
                return

    def _signal(self, signum: int) -> bool:
        if not self.supervisor_alive:
            return False
        assert self.record is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.record.shim_pid, signum)
            return True
        return False

    async def stop(self, grace_secs: float) -> int | None:
        """Have the supervisor stop the app (SIGTERM to its group, SIGKILL after
        ``grace_secs``) and end; the app's last exit code."""
        await self.detach()
        if self._signal(signal.SIGTERM):
            deadline = time.monotonic() + grace_secs + STOP_MARGIN_SECS
            while self.supervisor_alive and time.monotonic() < deadline:
                await asyncio.sleep(STOP_POLL_SECS)
                self._refresh()
            if self.supervisor_alive:
                log.warning("supervisor of %s did not stop; killing it", self.record_path.stem)
                self._kill_everything()
        record = self._refresh()
        # Once the supervisor has ended, a new process of the same instance may start in this
        # folder (a scale back up): its record and log are not this process's to delete.
        current = read_record(self.record_path)
        if current is None or record is None or current.shim_pid == record.shim_pid:
            self.record_path.unlink(missing_ok=True)
            self.record_path.with_suffix(".supervisor.log").unlink(missing_ok=True)
        return record.exit_code if record else None

    def _kill_everything(self) -> None:
        assert self.record is not None
        if self.record.app_pid is not None:  # the app leads its own process group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.record.app_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.record.shim_pid, signal.SIGKILL)

    async def detach(self) -> None:
        """Stop watching; the app goes on under its supervisor."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None


def _hand_over(launcher: subprocess.Popen[bytes], spec: bytes) -> bool:
    """Give a launcher its spec; False when it is gone."""
    assert launcher.stdin is not None
    try:
        with launcher.stdin:
            launcher.stdin.write(spec)
    except OSError:
        return False
    return True


def _launch_output(launcher: subprocess.Popen[bytes], shim_log: Path) -> list[str]:
    """The last lines a launcher that failed wrote: to its pipe before it read its spec, to
    the supervisor's log after."""
    said = b""
    if launcher.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            said = launcher.stderr.read()
    _discard(launcher)
    with contextlib.suppress(OSError):
        said += shim_log.read_bytes()
    return said.decode(errors="replace").strip().splitlines()[-3:]


async def _report(on_event: EventCallback, phase: str, message: str) -> None:
    try:
        await on_event(phase, message)
    except Exception as exc:  # recording is best effort; supervision goes on
        log.warning("cannot record %s event: %s", phase, exc)

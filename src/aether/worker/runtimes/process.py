"""One release's OS process: spawn, health gate, restart after crashes, stop.

The process runs in its own session (process group) so stopping it reaches everything the
start command spawned: SIGTERM to the group, SIGKILL after a grace period. On Linux it also
gets SIGTERM when the worker dies (``PR_SET_PDEATHSIG``): processes never outlive the worker.
Its stdout and stderr go line by line to the deployment's log file; the last lines are kept
in memory to explain a failed start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aether.worker.outcomes import Fatal
from aether.worker.runtimes.health import http_status, is_healthy
from aether.worker.runtimes.logfiles import LogWriter

log = logging.getLogger(__name__)

RECENT_LINES = 20
HEALTH_POLL_SECS = 0.02
BACKOFF_START_SECS = 1.0
BACKOFF_MAX_SECS = 30.0
# A process that ran this long before crashing restarts with the initial backoff again.
STABLE_AFTER_SECS = 60.0
_PR_SET_PDEATHSIG = 1

EventCallback = Callable[[str, str], Awaitable[None]]

try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # not glibc/Linux: processes then rely on the worker's orderly shutdown
    _LIBC = None


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class AppProcess:
    """A supervised process serving one release on one port."""

    def __init__(
        self,
        *,
        argv: Sequence[str],
        cwd: Path,
        env: dict[str, str],
        port: int,
        log_writer: LogWriter,
        health_path: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env
        self.port = port
        self.health_path = health_path
        self.log_writer = log_writer
        self.recent: deque[str] = deque(maxlen=RECENT_LINES)
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = False
        self._pumps: list[asyncio.Task[None]] = []
        self._watch: asyncio.Task[None] | None = None
        self._started_at = 0.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def spawn(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise Fatal(f"cannot start {' '.join(self.argv)!r}: {exc}") from exc
        self._started_at = time.monotonic()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(self.proc.stdout, "stdout")),
            asyncio.create_task(self._pump(self.proc.stderr, "stderr")),
        ]

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        pending = b""
        while chunk := await stream.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._write_line(name, raw)
        if pending:
            self._write_line(name, pending)

    def _write_line(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        self.recent.append(text)
        try:
            self.log_writer.write(stream, text)
        except (OSError, ValueError) as exc:  # a full disk must not kill the supervisor
            log.warning("cannot write log line of %s: %s", self.cwd.name, exc)

    def failure_detail(self) -> str:
        lines = [line for line in self.recent if line.strip()][-10:]
        return ("; last output: " + " | ".join(lines)) if lines else "; no output"

    async def wait_healthy(self, deadline: float) -> None:
        """Return once the process answers HTTP; Fatal when it exits or the deadline passes."""
        path = self.health_path or "/"
        while True:
            if not self.alive:
                await self._drain_pumps()
                code = self.proc.returncode if self.proc else None
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

    async def _drain_pumps(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pumps, return_exceptions=True), 2.0)

    def supervise(self, on_event: EventCallback) -> None:
        """Restart the process with backoff whenever it exits on its own."""
        self._watch = asyncio.create_task(self._watch_loop(on_event))

    async def _watch_loop(self, on_event: EventCallback) -> None:
        delay = BACKOFF_START_SECS
        while not self._stopping and self.proc is not None:
            code = await self.proc.wait()
            await self._drain_pumps()
            if self._stopping:
                return
            if time.monotonic() - self._started_at >= STABLE_AFTER_SECS:
                delay = BACKOFF_START_SECS
            await _report(on_event, "crashed", f"exit code {code}{self.failure_detail()}")
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self.restarts += 1
            try:
                await self.spawn()
            except Fatal as exc:
                await _report(on_event, "restart_failed", exc.message)
            else:
                await _report(on_event, "restarted", f"restart {self.restarts} after {delay:g}s")
            delay = min(delay * 2, BACKOFF_MAX_SECS)

    async def stop(self, grace_secs: float) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace_secs``; the exit code."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_secs)
            except TimeoutError:
                _signal_group(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        # Children that ignored SIGTERM (a shell's grandchildren) must not keep the port.
        _signal_group(self.proc.pid, signal.SIGKILL)
        await self._drain_pumps()
        return self.proc.returncode


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def _report(on_event: EventCallback, phase: str, message: str) -> None:
    try:
        await on_event(phase, message)
    except Exception as exc:  # recording is best effort; supervision goes on
        log.warning("cannot record %s event: %s", phase, exc)

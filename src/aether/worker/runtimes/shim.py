"""The supervisor of one release's app process; it outlives the worker that started it.

The worker runs ``python -m aether.worker.runtimes.shim`` detached (its own session, no
death signal) with a :class:`~aether.worker.runtimes.supervision.Spec` on stdin. The
supervisor then

- wipes and recreates the app's scratch folder (its ephemeral disk and ``HOME``),
- starts the command in its sandbox with its limits (``setrlimit``, nice, its own uid),
- writes every output line, timestamped, to the app's log files (rotated by size),
- after the worker armed it (SIGUSR1, sent once the release passed its health gate) restarts
  the app with backoff when it exits, and before that just records the exit and ends,
- on SIGTERM stops the app: SIGTERM to the app's process group, SIGKILL after the grace,
- stops the app and ends when its run record is deleted (the app was removed) or taken over
  by another supervisor of the same deployment (a worker that did not adopt this one started
  the release again): no supervisor runs on that no worker can find,

keeping its state in the run record, which the worker reads. Only the standard library and
the modules next to it are imported: it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from aether.worker.runtimes import warmnode
from aether.worker.runtimes.logfiles import LogWriter
from aether.worker.runtimes.sandbox import Bind, bwrap_argv, close_binds, open_binds
from aether.worker.runtimes.supervision import (
    Limits,
    RunRecord,
    Spec,
    boot_id,
    read_record,
    start_ticks,
)

MAX_LINE_BYTES = 64 * 1024  # a longer line is cut into pieces: memory stays bounded
BACKOFF_START_SECS = 1.0
BACKOFF_MAX_SECS = 30.0
STABLE_AFTER_SECS = 60.0  # a process that ran this long restarts with the initial backoff
TICK_SECS = 0.2
ORPHAN_CHECK_SECS = 2.0
EOF_WAIT_SECS = 2.0  # after the app exits, how long its descendants may hold the pipes
# The app's output pipes hold this much (Linux allows 1 MiB unprivileged): a burst, or a
# supervisor that is slow for a moment, does not make the app wait on its writes.
PIPE_BYTES = 1024 * 1024
READ_BYTES = 256 * 1024
# After a read that found little, wait this long before the next: a chatty app's many small
# writes then cost the supervisor one read and one file write, not one each (an app that
# writes every 2 ms: ~10 writes a read; the pipe holds far more than 20 ms of output).
GATHER_SECS = 0.02
GATHER_BELOW_BYTES = 32 * 1024


class Supervisor:
    def __init__(self, spec: Spec, running: subprocess.Popen[bytes] | None = None) -> None:
        self.spec = spec
        self._running = running  # the app already started (in a standby): its first run
        self.record_path = Path(spec.record_path)
        self.record = RunRecord(
            app_name=spec.app_name,
            deployment_id=spec.deployment_id,
            holder=spec.holder,
            owner=spec.owner,
            port=spec.port,
            shim_pid=os.getpid(),
            shim_started=start_ticks(os.getpid()) or 0,
            boot_id=boot_id(),
            launch_id=spec.launch_id,
            instance=spec.instance,
        )
        self.log = LogWriter(
            Path(spec.logs_dir),
            spec.deployment_id,
            max_bytes=spec.limits.log_max_bytes,
            keep_deployments=spec.keep_deployments,
            instance=f"{socket.gethostname()}/{spec.instance + 1}" if spec.instances > 1 else "",
        )
        self.armed = False
        self.stopping = False
        self.replaced = False  # another supervisor owns the record (and scratch) now
        self._next_orphan_check = 0.0

    # --- signals ------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        signal.signal(signal.SIGUSR1, lambda *_: self._arm())

    def _request_stop(self) -> None:
        self.stopping = True

    def _arm(self) -> None:
        self.armed = True

    # --- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        self._save("starting")
        delay = BACKOFF_START_SECS
        try:
            while not self.stopping:
                started = time.monotonic()
                code = self._run_once()
                if self.stopping or code is None:
                    break
                self.record.exits += 1
                self.record.exit_code = code
                if not self.armed:
                    self._save("exited")
                    return 0
                if time.monotonic() - started >= STABLE_AFTER_SECS:
                    delay = BACKOFF_START_SECS
                self._save("backoff", f"restarting in {delay:g}s")
                if not self._pause(delay):
                    break
                self.record.restarts += 1
                delay = min(delay * 2, BACKOFF_MAX_SECS)
            self._save("stopped")
            return 0
        finally:
            self.log.close()
            if not self.replaced:
                shutil.rmtree(self.spec.scratch, ignore_errors=True)

    def _run_once(self) -> int | None:
        """Start the app and pump its output until it exits; its exit code (None: stopped
        before it could start)."""
        try:
            proc, self._running = self._running or self._spawn(), None
        except OSError as exc:
            self._line("stderr", f"aether: cannot start the app: {exc}".encode())
            return 127
        self.record.app_pid = proc.pid
        self.record.started_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        self._save("running")
        return self._pump(proc)

    def _pause(self, secs: float) -> bool:
        """Sleep ``secs`` unless told to stop; False when stopping."""
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            if self.stopping or self._orphaned():
                return False
            time.sleep(min(TICK_SECS, max(deadline - time.monotonic(), 0)))
        return not self.stopping

    # --- starting -----------------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen[bytes]:
        fresh_scratch(self.spec)
        return start_app(self.spec)

    # --- running ------------------------------------------------------------------------
    def _pump(self, proc: subprocess.Popen[bytes]) -> int:
        assert proc.stdout is not None and proc.stderr is not None
        selector = selectors.DefaultSelector()
        pending = {"stdout": b"", "stderr": b""}
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            os.set_blocking(stream.fileno(), False)
            with contextlib.suppress(OSError):  # the default size still works
                fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            selector.register(stream, selectors.EVENT_READ, name)
        kill_at: float | None = None
        exited_at: float | None = None
        while selector.get_map():
            read = [self._read(key, selector, pending) for key, _ in selector.select(TICK_SECS)]
            if read and max(read) < GATHER_BELOW_BYTES and not self.stopping:
                time.sleep(GATHER_SECS)
            if (self.stopping or self._orphaned()) and kill_at is None:
                kill_at = time.monotonic() + self.spec.grace_secs
                self._signal_app(proc, signal.SIGTERM)
            if kill_at is not None and time.monotonic() >= kill_at:
                self._signal_app(proc, signal.SIGKILL)
                kill_at = float("inf")
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > EOF_WAIT_SECS:
                break  # a descendant holds the pipes open: stop reading them
        for name, rest in pending.items():
            if rest:
                self._line(name, rest)
        selector.close()
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        code = proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of its session
        return code

    def _read(
        self, key: selectors.SelectorKey, selector: selectors.BaseSelector, pending: dict
    ) -> int:
        """Read what the app wrote to one pipe and write its complete lines; how many bytes
        were read (0 at its end)."""
        name = key.data
        try:
            chunk = os.read(key.fd, READ_BYTES)
        except BlockingIOError:
            return 0
        if not chunk:
            selector.unregister(key.fileobj)
            return 0
        data = pending[name] + chunk
        complete, newline, rest = data.rpartition(b"\n")
        pieces = []
        while len(rest) > MAX_LINE_BYTES:
            pieces.append(rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        pending[name] = rest
        if newline:
            # One decode and one split for the whole chunk: "\n" is never inside a UTF-8
            # sequence, so this decodes exactly as line by line would.
            text = complete.decode("utf-8", errors="replace")
            lines = text.split("\n")
            self._write(name, [x.rstrip("\r") for x in lines] if "\r" in text else lines)
        for piece in pieces:
            self._line(name, piece)
        return len(chunk)

    def _line(self, stream: str, raw: bytes) -> None:
        self._write(stream, [raw.decode("utf-8", errors="replace").rstrip("\r")])

    def _write(self, stream: str, lines: list[str]) -> None:
        try:
            self.log.write_lines(stream, lines)
        except (OSError, ValueError):
            pass  # a full disk must not stop the app; the lines are lost

    def _signal_app(self, proc: subprocess.Popen[bytes], signum: int) -> None:
        """SIGTERM goes to the app's process group; SIGKILL ends the whole sandbox."""
        if proc.poll() is not None:
            return
        group = self._app_group(proc.pid)
        targets = [group] if group else []
        if signum == signal.SIGKILL or not group:
            targets.append(proc.pid)
        for target in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(target, signum)

    def _app_group(self, pid: int) -> int | None:
        """bubblewrap's sandbox init leads the app's session (``--new-session``): signal its
        group, or the init itself, as pid 1 of the namespace, ignores SIGTERM and the app
        gets it. Without a sandbox the app leads its own group."""
        if not self.spec.bwrap:
            return pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _orphaned(self) -> bool:
        """The run record was deleted (the app was removed, or its data dir) or another
        supervisor of this deployment wrote it: stop, as no worker can find this one now."""
        now = time.monotonic()
        if now < self._next_orphan_check:
            return False
        self._next_orphan_check = now + ORPHAN_CHECK_SECS
        if not self.record_path.exists():
            self.stopping = True
        elif (record := read_record(self.record_path)) and record.shim_pid != self.record.shim_pid:
            self.stopping = self.replaced = True
        return self.stopping

    def _save(self, state: str, detail: str = "") -> None:
        self.record.state = state
        self.record.detail = detail
        if self.replaced or (state != "starting" and not self.record_path.parent.is_dir()):
            return  # removed, or the record is another supervisor's: nothing to report to
        with contextlib.suppress(OSError):
            self.record.write(self.record_path)


# --- starting an app (also a standby's Node.js) ------------------------------------------
def start_app(spec: Spec, extra_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """Start ``spec.command`` in its sandbox with its limits; ``extra_fds`` stay open in it."""
    opened = open_binds([Bind(**b) for b in spec.binds]) if spec.bwrap else []
    try:
        argv = spec.command
        if spec.bwrap:
            argv = bwrap_argv(
                spec.bwrap,
                opened,
                cwd=spec.cwd,
                command=spec.command,
                privileged=spec.uid is not None,
            )
        return subprocess.Popen(
            argv,
            cwd=spec.cwd,
            env=spec.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=[*(fd for _, fd in opened if fd is not None), *extra_fds],
            preexec_fn=lambda: _confine(spec.limits),
        )
    finally:
        close_binds(opened)


def _confine(limits: Limits) -> None:
    """In the child, before exec: limits and priority (the app's uid, when it has one, is
    taken inside the sandbox by ``setpriv``)."""
    for kind, value in (
        (resource.RLIMIT_DATA, limits.memory_bytes),
        (resource.RLIMIT_NPROC, limits.max_processes),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        if value or kind == resource.RLIMIT_CORE:
            resource.setrlimit(kind, (value, value))
    os.setpriority(os.PRIO_PROCESS, 0, limits.nice)


def fresh_scratch(spec: Spec) -> None:
    """Wipe and make again the app's scratch folder (its HOME and TMPDIR)."""
    scratch = Path(spec.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    for sub in (scratch, scratch / "home", scratch / "tmp"):
        sub.mkdir(mode=0o700, parents=True, exist_ok=True)
        if spec.uid is not None:
            os.chown(sub, spec.uid, spec.uid)


def main() -> int:
    # A launcher may wait here, started before it was needed. One line: the spec (then EOF),
    # or a standby's spec followed, later, by its activation.
    text, rest = _first_line(0)
    if not text:
        return 0  # the worker no longer needs this launcher
    spec = Spec.from_json(text)
    if spec.standby:
        return _standby(spec, rest)
    _output_to(Path(spec.record_path).with_suffix(".supervisor.log"))
    # Daemonise: the worker reaps this process at once and the supervisor lives on as an
    # orphan (adopted by init or a subreaper), never a child the worker must wait for.
    if os.fork():
        os._exit(0)
    supervisor = Supervisor(spec)
    supervisor.install_signals()
    return supervisor.run()


def _first_line(fd: int) -> tuple[str, bytes]:
    """The first line on ``fd`` (or all of it, up to EOF) and what came after it."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line.decode(), rest


def _standby(spec: Spec, rest: bytes) -> int:
    """Start Node.js waiting in the app's sandbox, tell the worker (``ready``) and wait for
    the activation: then become that release's supervisor (``taken``), or end (``declined
    …``). The worker closing stdin ends the standby, and so does Node.js ending."""
    answers = os.dup(1)  # the worker reads the answers here; the rest goes to the log
    _output_to(Path(spec.record_path))
    if os.fork():
        os._exit(0)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    fresh_scratch(spec)
    ours, theirs = socket.socketpair()
    bootstrap = warmnode.write_bootstrap(Path(spec.scratch), theirs.fileno(), spec.uid, spec.ahead)
    command = [*spec.command, str(bootstrap)]
    proc = start_app(dataclasses.replace(spec, command=command), (theirs.fileno(),))
    theirs.close()
    deadline = time.monotonic() + warmnode.READY_SECS
    if warmnode.read_line(ours, deadline) != "ready":
        said = warmnode.gist(_what_it_said(proc))
        return _end_standby(proc, spec, "Node.js did not start" + (f": {said}" if said else ""))
    _answer(answers, "ready")
    line = warmnode.wait_for_activation(0, rest, lambda: not stopping and proc.poll() is None)
    if not line:
        return _end_standby(proc, spec, "")
    try:  # all that can fail before Node.js runs the release: then it starts cold
        request = json.loads(line)
        target = Spec.from_dict(request["spec"])
        supervisor = Supervisor(target, running=proc)
        message = warmnode.activation(target.env, target.cwd, request["entry"])
        failure = warmnode.hand_over(ours, message)
    except Exception as exc:
        failure = f"cannot activate: {type(exc).__name__}: {exc}"
    if failure:
        _answer(answers, f"declined {failure}")
        return _end_standby(proc, spec, failure)
    ours.close()
    _output_to(Path(target.record_path).with_suffix(".supervisor.log"))
    Path(spec.record_path).unlink(missing_ok=True)
    supervisor.install_signals()
    supervisor._save("starting")  # before the answer: the worker looks for it next
    _answer(answers, "taken")
    os.close(answers)
    return supervisor.run()


def _what_it_said(proc: subprocess.Popen[bytes], limit: int = 1 << 16) -> bytes:
    """What a Node.js that ended has written to its stderr (what its pipe holds, at most
    ``limit`` bytes; nothing from one still running a second later, which is ended)."""
    try:
        proc.wait(timeout=1.0)  # (its end of the socket closes as it exits)
    except subprocess.TimeoutExpired:
        return b""
    if proc.stderr is None:
        return b""
    os.set_blocking(proc.stderr.fileno(), False)
    with contextlib.suppress(OSError, TypeError):
        return proc.stderr.read(limit) or b""
    return b""


def _answer(fd: int, text: str) -> None:
    with contextlib.suppress(OSError):  # a worker that went no longer listens
        os.write(fd, text.encode() + b"\n")


def _end_standby(proc: subprocess.Popen[bytes], spec: Spec, why: str) -> int:
    """End the waiting Node.js (its whole sandbox) and the standby with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if why:
        print(f"aether: standby ended: {why}", file=sys.stderr)
    shutil.rmtree(spec.scratch, ignore_errors=True)
    if not why:
        Path(spec.record_path).unlink(missing_ok=True)
    return 0


def _output_to(path: Path) -> None:
    """From now on stdout and stderr (a traceback, should the supervisor fail) go to its log
    beside the run record, not to the pipe the worker read while it waited for the spec."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


if __name__ == "__main__":
    sys.exit(main())

"""A standby: a Node.js process started ahead of an app's next release, waiting in its sandbox.

After a release passed its health gate the local runtime readies one standby for the app
(:class:`Standby`): a supervisor (:mod:`aether.worker.runtimes.shim`) whose sandbox is the one
the app's next release would get — same binds apart from the release folder, uid, limits,
nice, node binary and scratch folder — and whose Node.js has started with the serving
release's environment minus the values of one deployment (:data:`PER_DEPLOYMENT`, and the
release's ``node_modules/.bin`` on ``PATH``). It then waits, blocked, for the release it will
run (:mod:`aether.worker.runtimes.warmnode`).

The next release's folder does not exist yet when the standby starts, so the standby sees
its app's folder read-only, with everything that was in it then hidden behind empty
read-only folders (the serving release, logs, run records, other processes' scratch), and
its own scratch folder writable: what appears there later is the app's own next release.

A deploy uses the standby only when it fits (:meth:`Standby.misfit`): a plain ``node <file>
[args]`` start command, the same environment apart from those values, the same binds and
node, the first instance. Anything else, or anything unexpected on the way, and the release
starts cold. Closing the standby's stdin ends it, and so does the worker's exit (its end of
the pipe closes with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import select
import shutil
import subprocess
import uuid
from pathlib import Path

from aether.worker.runtimes.sandbox import Bind
from aether.worker.runtimes.supervision import Spec

log = logging.getLogger(__name__)

# What differs between two deployments of one configuration: set at activation.
PER_DEPLOYMENT = ("PORT", "AETHER_DEPLOYMENT_ID", "AETHER_DIGEST")
SCRATCH_PREFIX = "standby-"
ANSWER_SECS = 30.0  # for the standby to take a release (Node.js may still be starting)
END_SECS = 5.0  # for a standby's supervisor to end once its stdin is closed
# A plain word of a start command: no quoting, expansion or other shell syntax.
ENDED = "aether: standby ended: "  # how the standby's supervisor says why it ended
_PLAIN = re.compile(r"[A-Za-z0-9_./:=@%+,-]+")


def entry_of(command: str) -> list[str] | None:
    """``[file, *args]`` when ``command`` is a plain ``node <file> [args]``, else None (a
    node option before the file would change ``process.execArgv``)."""
    words = command.split()
    if len(words) < 2 or words[0] != "node" or words[1].startswith("-"):
        return None
    return words[1:] if all(_PLAIN.fullmatch(word) for word in words) else None


def waiting_env(env: dict[str, str], folder: Path) -> dict[str, str]:
    """The environment a standby's Node.js starts with: the release's, minus its
    per-deployment values and its ``node_modules/.bin`` on ``PATH``."""
    waiting = {k: v for k, v in env.items() if k not in PER_DEPLOYMENT}
    bin_dir = str(folder / "node_modules" / ".bin") + os.pathsep
    waiting["PATH"] = waiting.get("PATH", "").removeprefix(bin_dir)
    return waiting


def standby_scratch(app_dir: Path) -> Path:
    return app_dir / "scratch" / f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"


def _view(binds: list[dict[str, str]], folder: Path) -> tuple[list[dict[str, str]], set[str]]:
    """The cold start's binds with its release folder replaced by the app's folder, whose
    present entries are hidden; and the names hidden."""
    app_dir = folder.parent
    hidden = {entry.name for entry in app_dir.iterdir()}
    view: list[dict[str, str]] = []
    for bind in binds:
        if bind["source"] != str(folder):
            view.append(bind)
            continue
        view.append(vars(Bind(str(app_dir))))
        for name in sorted(hidden):
            entry = app_dir / name
            if entry.is_dir() and not entry.is_symlink():
                view.append(vars(Bind("", "empty", str(entry))))
            else:  # a file: /dev/null over it, which cannot be read on a sandbox's bind
                view.append(vars(Bind(os.devnull, "ro", str(entry))))
    # In the cold start's order: the empty folders come before what shows through them
    # (the scratch folder, a dependency layer inside the app's folder).
    return view, hidden


def node_of(env: dict[str, str]) -> str | None:
    """The node binary ``node`` names on the environment's PATH (its real path)."""
    found = shutil.which("node", path=env.get("PATH", os.defpath))
    return os.path.realpath(found) if found else None


@dataclasses.dataclass
class Standby:
    """The worker's handle on one app's standby: the pipe to its supervisor."""

    app_name: str
    base: Spec  # a cold start of the serving release, in this standby's scratch folder
    folder: Path  # the serving release's folder
    hidden: set[str]  # what the standby does not see of the app's folder
    launcher: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    ahead: dict | None = None  # what its Node.js resolves ahead (:mod:`.aheadnode`)
    why_ended: str = ""  # what its supervisor said as it ended by itself

    @property
    def scratch(self) -> str:
        return self.base.scratch

    @classmethod
    def launch(
        cls,
        app_name: str,
        base: Spec,
        folder: Path,
        argv: list[str],
        env: dict,
        ahead: dict | None = None,
    ) -> Standby:
        """Start the standby's supervisor with ``argv``/``env`` (the supervisor's own); it
        starts Node.js, which resolves ``ahead`` and waits."""
        binds, hidden = _view(base.binds, folder) if base.bwrap else (base.binds, set())
        log_path = Path(base.record_path).parent / f"{Path(base.scratch).name}.log"
        spec = dataclasses.replace(
            base,
            deployment_id="",
            port=0,
            standby=True,
            cwd=base.scratch,
            env=waiting_env(base.env, folder),
            command=[*base.command[:-3], "node"],  # the uid drop, without `/bin/sh -c …`
            binds=binds,
            record_path=str(log_path),
            ahead=ahead,
        )
        launcher = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # not in the worker's group: Ctrl-C spares it
        )
        assert launcher.stdin is not None and launcher.stdout is not None
        launcher.stdin.write(spec.to_json().encode() + b"\n")
        launcher.stdin.flush()
        os.set_blocking(launcher.stdout.fileno(), False)
        return cls(app_name, base, folder, hidden, launcher, log_path, ahead)

    def misfit(self, spec: Spec, folder: Path, entry: list[str] | None) -> str | None:
        """Why ``spec`` (a cold start of the next release, in this standby's scratch) cannot
        run in this standby; None when it can."""
        base = self.base
        if entry is None:
            return "the start command is not a plain `node <file>`"
        if spec.instance != 0:
            return "not the first instance"
        if waiting_env(spec.env, folder) != waiting_env(base.env, self.folder):
            return "the app's environment changed"
        if folder.parent != self.folder.parent or folder.name in self.hidden:
            return "the release folder is not in the standby's view"
        ours = [b for b in base.binds if b["source"] != str(self.folder)]
        theirs = [b for b in spec.binds if b["source"] != str(folder)]
        same = (ours, base.uid, base.limits, base.bwrap, base.scratch, base.command[:-1]) == (
            theirs,
            spec.uid,
            spec.limits,
            spec.bwrap,
            spec.scratch,
            spec.command[:-1],
        )
        if not same:
            return "the sandbox differs (dependencies, limits or uid)"
        if node_of(spec.env) != node_of(waiting_env(base.env, self.folder)):
            return "another node binary"
        return None

    async def activate(self, spec: Spec, entry: list[str]) -> str | None:
        """Hand the standby the release; None once its supervisor has taken it (its run
        record is written), else why not (the standby has ended)."""
        launcher = self.launcher
        assert launcher is not None and launcher.stdin is not None
        request = {"spec": dataclasses.asdict(spec), "entry": entry}
        try:
            launcher.stdin.write(json.dumps(request).encode() + b"\n")
            launcher.stdin.close()
        except OSError as exc:
            return f"the standby is gone ({exc})"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANSWER_SECS
        while True:
            answer = await _read_line(launcher, deadline)
            if answer != "ready":
                break
        if answer == "taken":  # the supervisor runs the release now: only the launcher to reap
            self.launcher = None
            # It exited when it forked the standby, long ago: reaped here without the trip to
            # a thread (a few ms on a loaded host, on the deploy's path) unless it has not.
            if launcher.poll() is None:
                await asyncio.to_thread(launcher.wait)
            if launcher.stdout is not None:
                launcher.stdout.close()
            return None
        return answer.removeprefix("declined ") or "the standby ended"

    def reap_launcher(self) -> None:
        """Wait for the launcher to hand over to the supervisor it forked (and exit)."""
        launcher = self.launcher
        if launcher is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                launcher.wait(timeout=ANSWER_SECS)

    async def ready(self, timeout: float) -> bool:
        """Wait until Node.js waits in the standby (its sandbox is made by then); False when
        it ended or the time ran out."""
        loop = asyncio.get_running_loop()
        return await _read_line(self.launcher, loop.time() + timeout) == "ready"

    async def end(self) -> None:
        """End the standby (closing its stdin ends it) and wait until it has (then
        :attr:`why_ended` says why it ended by itself, if it did)."""
        launcher, self.launcher = self.launcher, None
        if launcher is None:
            return
        with contextlib.suppress(OSError):
            if launcher.stdin is not None:
                launcher.stdin.close()
        await asyncio.to_thread(_wait_ended, launcher)
        said = ""
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                said = self.log_path.read_text(errors="replace").strip()
            self.log_path.unlink(missing_ok=True)
        last = said.splitlines()[-1] if said else ""
        if last:
            log.warning("the standby of %s: %s", self.app_name, last)
        self.why_ended = last.removeprefix(ENDED) if last.startswith(ENDED) else ""


async def _read_line(launcher: subprocess.Popen[bytes] | None, deadline: float) -> str:
    """One answer line of the standby's supervisor ('' at its end or the deadline)."""
    if launcher is None or launcher.stdout is None:
        return ""
    loop = asyncio.get_running_loop()
    fd = launcher.stdout.fileno()
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = os.read(fd, 1)  # one byte at a time: the next line stays in the pipe
        except BlockingIOError:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, readable)
            try:
                await asyncio.wait_for(readable, max(deadline - loop.time(), 0))
            except TimeoutError:
                return ""
            finally:
                loop.remove_reader(fd)
            continue
        if not chunk:
            return ""
        data += chunk
    return data.decode(errors="replace").strip()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wait_ended(launcher: subprocess.Popen[bytes]) -> None:
    """Reap the launcher and wait for the supervisor's end of the answer pipe to close."""
    launcher.wait()
    stdout = launcher.stdout
    if stdout is None:
        return
    os.set_blocking(stdout.fileno(), True)
    with contextlib.suppress(OSError, ValueError):
        while select.select([stdout], [], [], END_SECS)[0] and os.read(stdout.fileno(), 4096):
            pass
        stdout.close()

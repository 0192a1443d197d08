"""What an app process may see: a bubblewrap sandbox, and the probe that says whether it works.

An app runs in its own mount, PID, IPC, UTS and user namespaces (bubblewrap, Debian's
``bubblewrap`` package): its view of the filesystem holds the system directories read-only,
its release folder (and dependency layer) read-only, and one writable scratch folder, at the
same paths as on the host. Nothing else exists for it: not the data directory, the database,
the presign key, the server's home or session file, nor other apps' folders. In its own PID
namespace it sees and signals only its own processes. When the worker runs as root, bubblewrap
runs as root without a user namespace and ``setpriv`` drops the app to a uid of its own
(:mod:`aether.worker.runtimes.appusers`) with no capabilities and ``no_new_privs``; otherwise
bubblewrap makes an unprivileged user namespace (``--disable-userns`` then forbids nesting).

Bind sources are opened by the supervisor and handed to bubblewrap as descriptors
(``--ro-bind-fd``). Pure except :func:`probe`, which runs bubblewrap once. This module imports only the standard library: the supervisor uses it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Host directories every app sees read-only (those that exist; symlinks stay symlinks).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
PROBE_TIMEOUT_SECS = 10.0
TMPFS_BYTES = 64 * 1024 * 1024  # /tmp is memory: bounded; TMPDIR points at the scratch disk
EMPTY_BYTES = 64 * 1024  # an ``empty`` bind holds only the mount points of binds inside it


@dataclass(frozen=True)
class Bind:
    """One path of the app's view: ``mode`` is ``ro``, ``rw``, ``symlink`` (then ``source``
    is the link's target) or ``empty`` (an empty read-only folder hides the host's: a
    standby's view of its app's folder). ``dest`` defaults to the host path."""

    source: str
    mode: str = "ro"
    dest: str = ""

    @property
    def target(self) -> str:
        return self.dest or self.source


@dataclass(frozen=True)
class Isolation:
    """What this host gives apps; reported at start and by ``aether worker --isolation``."""

    kind: str  # "bubblewrap" | "none"
    uid_per_app: bool  # each app runs as its own uid (the worker runs as root)
    bwrap: str | None = None  # the bubblewrap binary
    setpriv: str | None = None  # as root: drops to the app's uid inside the sandbox
    reasons: tuple[str, ...] = field(default_factory=tuple)  # why there is less isolation

    @property
    def isolated(self) -> bool:
        return self.kind != "none"

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "filesystem": "namespaces" if self.isolated else "none",
            "signals": "pid-namespace"
            if self.isolated
            else ("uid" if self.uid_per_app else "none"),
            "uid_per_app": self.uid_per_app,
            "limits": "setrlimit",
            "reasons": list(self.reasons),
        }


def system_binds(extra_dirs: tuple[str, ...] = ()) -> list[Bind]:
    """The system part of the view: SYSTEM_DIRS plus ``extra_dirs`` (a Node.js installed
    outside /usr), each as it is on the host."""
    binds = []
    for path in (*SYSTEM_DIRS, *extra_dirs):
        if os.path.islink(path):
            binds.append(Bind(os.readlink(path), "symlink", path))
        elif os.path.isdir(path):
            binds.append(Bind(path))
    return binds


def node_prefix(path_env: str) -> str | None:
    """The installation prefix of the ``node`` on ``path_env`` when it lies outside the
    system directories (e.g. ``/opt/node-v20``), so the view must include it."""
    found = shutil.which("node", path=path_env)
    if found is None:
        return None
    prefix = str(Path(os.path.realpath(found)).parent.parent)
    inside = any(prefix == d or prefix.startswith(d + "/") for d in SYSTEM_DIRS)
    return None if inside else prefix


def bwrap_argv(
    bwrap: str,
    binds: list[tuple[Bind, int | None]],
    *,
    cwd: str,
    command: list[str],
    privileged: bool,
) -> list[str]:
    """bubblewrap's command line. ``binds`` pairs each Bind with the descriptor the caller
    opened for it (None for symlinks), in order: a later bind may sit inside an earlier one.
    ``privileged``: bubblewrap runs as root and ``command`` drops to the app's uid itself
    (:func:`drop_to`); otherwise bubblewrap makes an unprivileged user namespace."""
    if privileged:
        namespaces = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        namespaces = ["--unshare-all", "--share-net", "--unshare-user", "--disable-userns"]
    argv = [
        bwrap,
        *namespaces,  # the network stays shared: the router reaches the app on its port
        "--die-with-parent",  # the supervisor gone, the app goes too (never unsupervised)
        "--new-session",  # the app's own session: one process group to signal
        "--proc", "/proc",  # of its own PID namespace: only its own processes
        "--dev", "/dev",
        # A small, fresh /tmp in memory, mounted first so binds below /tmp land on top of it.
        "--size", str(TMPFS_BYTES), "--perms", "1777", "--tmpfs", "/tmp",
    ]  # fmt: skip
    for parent in _parents([bind.target for bind, _ in binds if bind.mode != "symlink"]):
        # bubblewrap would copy the host's modes (a 0700 data dir): make them traversable.
        argv += ["--perms", "0755", "--dir", parent]
    for bind, fd in binds:
        if bind.mode == "symlink":
            argv += ["--symlink", bind.source, bind.target]
        elif bind.mode == "empty":  # read-only once the binds inside it are in place
            argv += ["--perms", "0755", "--size", str(EMPTY_BYTES), "--tmpfs", bind.target]
        else:
            flag = "--bind-fd" if bind.mode == "rw" else "--ro-bind-fd"
            argv += [flag, str(fd), bind.target]
    for bind, _ in binds:
        if bind.mode == "empty":
            argv += ["--remount-ro", bind.target]
    return [*argv, "--chdir", cwd, "--", *command]


def _parents(targets: list[str]) -> list[str]:
    """Directories above the bind targets that the sandbox must create (not ``/``, /tmp,
    or a target itself), outermost first."""
    made = {"/", "/tmp", "/proc", "/dev", *targets}
    parents: list[str] = []
    for target in targets:
        for parent in reversed(Path(target).parents):
            name = str(parent)
            if name not in made and name not in parents:
                parents.append(name)
    return parents


def drop_to(setpriv: str, uid: int) -> list[str]:
    """The prefix that runs a command as ``uid`` with no groups, capabilities or way back."""
    ids = str(uid)
    return [
        setpriv, "--reuid", ids, "--regid", ids, "--clear-groups", "--no-new-privs",
        "--bounding-set", "-all", "--inh-caps", "-all", "--",
    ]  # fmt: skip


def open_binds(binds: list[Bind]) -> list[tuple[Bind, int | None]]:
    """Open each bind source as an ``O_PATH`` descriptor (the caller closes them)."""
    opened: list[tuple[Bind, int | None]] = []
    try:
        for bind in binds:
            fd = None
            if bind.mode not in ("symlink", "empty"):
                fd = os.open(bind.source, os.O_PATH | os.O_CLOEXEC)
            opened.append((bind, fd))
    except OSError:
        close_binds(opened)
        raise
    return opened


def close_binds(opened: list[tuple[Bind, int | None]]) -> None:
    for _, fd in opened:
        if fd is not None:
            os.close(fd)


def probe(mode: str, *, running_as_root: bool) -> Isolation:
    """Which isolation works here. ``mode`` is AETHER_SANDBOX: ``none`` skips the probe,
    ``bubblewrap`` and ``auto`` try it (the caller refuses to start when ``bubblewrap`` was
    asked for and the answer is ``none``)."""
    if mode == "none":
        return Isolation("none", False, reasons=("AETHER_SANDBOX=none",))
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        reason = "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
        return Isolation("none", False, reasons=(reason,))
    setpriv = shutil.which("setpriv") if running_as_root else None
    if running_as_root and setpriv is None:
        return Isolation("none", False, reasons=("setpriv (util-linux) is not installed",))
    failure = _try_bwrap(bwrap, setpriv)
    if failure:
        return Isolation("none", False, reasons=(failure,))
    return Isolation("bubblewrap", running_as_root, bwrap=bwrap, setpriv=setpriv)


def _try_bwrap(bwrap: str, setpriv: str | None) -> str | None:
    """Run ``true`` in a sandbox like an app's (as ``nobody`` when root); the failure, or
    None."""
    opened = open_binds(system_binds())
    command = ["/bin/true"] if setpriv is None else [*drop_to(setpriv, 65534), "/bin/true"]
    argv = bwrap_argv(bwrap, opened, cwd="/", command=command, privileged=setpriv is not None)
    try:
        done = subprocess.run(
            argv,
            pass_fds=[fd for _, fd in opened if fd is not None],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap cannot run: {exc}"
    finally:
        close_binds(opened)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return f"bubblewrap does not work here ({detail[0]}); are user namespaces disabled?"
    return None

"""What the worker and an app's supervisor tell each other: the spec and the run record.

The worker starts a supervisor (:mod:`aether.worker.runtimes.shim`) with a :class:`Spec` on
its stdin — the command, its environment (secrets included, so it is never written to disk),
the sandbox and the limits. The supervisor keeps a :class:`RunRecord` at
``<apps>/<app>/run/<deployment id>.json``: its own pid and start time, the app's, how often the
app exited and was restarted. A worker that starts later adopts the
supervisor only when the pid, the process start time and the boot id all match the record
(a pid alone may have been reused). Standard library only: the supervisor imports this.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

RUN_DIR = "run"
SERVING_FILE = "serving"


@dataclass(frozen=True)
class Limits:
    memory_bytes: int  # RLIMIT_DATA of each process (0: none)
    max_processes: int  # RLIMIT_NPROC (0: none)
    max_open_files: int  # RLIMIT_NOFILE
    nice: int  # scheduling priority below the worker's
    log_max_bytes: int  # the app's log files, all deployments, rotated


@dataclass(frozen=True)
class Spec:
    app_name: str
    deployment_id: str
    holder: str  # the worker identity that owns this supervisor
    owner: str | None  # the app's owner
    command: list[str]  # what runs inside the sandbox
    cwd: str
    env: dict[str, str]
    port: int
    record_path: str
    logs_dir: str
    scratch: str  # wiped and made again at every start: the app's ephemeral disk
    limits: Limits
    keep_deployments: int  # log files of this many of the app's deployments are kept
    grace_secs: float
    uid: int | None = None  # run as this uid/gid (the worker is root)
    bwrap: str | None = None  # sandbox with bubblewrap, else run the command directly
    binds: list[dict[str, str]] = field(default_factory=list)  # sandbox.Bind fields
    launch_id: str = ""  # names this start: the worker finds the record it caused
    instance: int = 0  # which of the release's processes (0 … replicas - 1)
    instances: int = 1  # how many the release runs (its log lines name the process if > 1)
    # a standby (:mod:`aether.worker.runtimes.warmnode`): ``command`` starts Node.js, which
    # waits for the release; ``record_path`` names the standby's own log
    standby: bool = False
    # a standby's: what its Node.js resolves ahead while it waits (:mod:`.aheadnode`)
    ahead: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict) -> Spec:
        return cls(**{**data, "limits": Limits(**data["limits"])})


@dataclass
class RunRecord:
    """The supervisor's state on disk; ``state`` is starting | running | backoff | exited |
    stopped."""

    app_name: str
    deployment_id: str
    holder: str
    owner: str | None
    port: int
    shim_pid: int
    shim_started: int  # process start time in clock ticks since boot (/proc/PID/stat)
    boot_id: str
    launch_id: str = ""
    state: str = "starting"
    app_pid: int | None = None
    exits: int = 0
    restarts: int = 0
    exit_code: int | None = None
    detail: str = ""
    started_at: str = ""  # when the app process last started (ISO-8601 UTC)
    instance: int = 0

    def write(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self)) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def read_record(path: Path) -> RunRecord | None:
    try:
        return RunRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def instance_key(deployment_id: str, instance: int = 0) -> str:
    """A release's process in file names: the deployment id for the first (as before
    releases had several), ``<deployment id>.<n>`` for the others."""
    return deployment_id if instance == 0 else f"{deployment_id}.{instance}"


def record_path(apps_dir: Path, app_name: str, deployment_id: str, instance: int = 0) -> Path:
    return apps_dir / app_name / RUN_DIR / f"{instance_key(deployment_id, instance)}.json"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    state = fields[0] if fields else "X"
    return None if state in ("Z", "X") else int(fields[19])


def supervisor_alive(record: RunRecord) -> bool:
    """Is the record's supervisor this very process, still running (not a reused pid)?"""
    if record.boot_id != boot_id():
        return False
    return start_ticks(record.shim_pid) == record.shim_started


def write_serving(
    apps_dir: Path, app_name: str, deployment_id: str, runs: str | None = None
) -> None:
    """Remember which deployment serves the app, for the next worker's adoption; ``runs``:
    the deployment whose processes serve it, when that is another (a scale kept them)."""
    run_dir = apps_dir / app_name / RUN_DIR
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{SERVING_FILE}.tmp"
    lines = [deployment_id] + ([runs] if runs and runs != deployment_id else [])
    tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(tmp, run_dir / SERVING_FILE)


def read_serving(apps_dir: Path, app_name: str) -> tuple[str, str] | None:
    """``(the deployment serving the app, the deployment whose processes serve it)``."""
    with contextlib.suppress(OSError):
        text = (apps_dir / app_name / RUN_DIR / SERVING_FILE).read_text(encoding="utf-8")
        lines = text.split()
        if lines:
            return lines[0], lines[-1]
    return None

"""Finding the apps an earlier worker left running, and who this worker is.

A local-runtime worker's identity (its lease holder name) is stable across restarts:
``local:<host>:<data dir hash>:<slot>``, where the slot is the lowest number whose lock file
under ``<apps>/.workers/`` it can lock. A restarted worker gets its slot back and so still
holds the leases of the apps it ran — no lease has to expire — and adopts their supervisors.
Two workers sharing a data dir get different slots. The lock goes with the process, even
after ``kill -9``.
"""

from __future__ import annotations

import fcntl
import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aether.worker.runtimes.supervision import (
    RUN_DIR,
    RunRecord,
    read_record,
    read_serving,
    supervisor_alive,
)

SLOTS_DIR = ".workers"
MAX_SLOTS = 64


@dataclass
class Slot:
    holder: str
    lock: IO[str]

    def release(self) -> None:
        self.lock.close()


def claim_slot(apps_dir: Path) -> Slot:
    """Lock the lowest free worker slot of this data dir."""
    slots = apps_dir / SLOTS_DIR
    slots.mkdir(parents=True, exist_ok=True)
    where = hashlib.sha256(str(apps_dir.resolve()).encode()).hexdigest()[:8]
    for number in range(MAX_SLOTS):
        lock = (slots / f"{number}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return Slot(f"local:{socket.gethostname()}:{where}:{number}", lock)
    raise RuntimeError(f"more than {MAX_SLOTS} workers use {apps_dir}")


@dataclass(frozen=True)
class Found:
    """A run record whose supervisor is still alive."""

    path: Path
    record: RunRecord
    serving: str | None  # the deployment it serves (the app's ``serving`` file), else None


def running_supervisors(apps_dir: Path, holder: str | None = None) -> list[Found]:
    """Live supervisors under ``apps_dir`` (of ``holder`` only, when given). Records of dead
    supervisors are deleted on the way."""
    found = []
    for path in sorted(apps_dir.glob(f"*/{RUN_DIR}/*.json")):
        record = read_record(path)
        if record is None:
            continue
        if not supervisor_alive(record):
            path.unlink(missing_ok=True)
            continue
        if holder is not None and record.holder != holder:
            continue
        named = read_serving(apps_dir, record.app_name)
        serving = named[0] if named and named[1] == record.deployment_id else None
        found.append(Found(path, record, serving))
    return found

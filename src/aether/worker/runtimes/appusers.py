"""One unprivileged uid per app when the worker runs as root.

An app's processes run as ``AETHER_SANDBOX_UID_BASE + n`` (gid the same, no supplementary
groups), where ``n`` is handed out once per app name and recorded in
``<data_dir>/apps/.uids.json``; numbers are never reused, so files or processes an old app
left behind can never belong to a new one. The uids need no ``/etc/passwd`` entry. With a
uid of its own an app cannot signal, trace or read the ``/proc`` entries of other apps or the
worker, and its process-count limit (``RLIMIT_NPROC``) counts only its own processes.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

UIDS_FILE = ".uids.json"
# Leave room below 2**31 and above any ordinary account; the base is configurable.
MAX_APPS = 1_000_000


def app_uid(apps_dir: Path, app_name: str, *, base: int) -> int:
    """The app's uid, allocated on first use (safe across workers sharing the folder)."""
    apps_dir.mkdir(parents=True, exist_ok=True)
    path = apps_dir / UIDS_FILE
    with (apps_dir / ".uids.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = _read(path)
        if app_name not in table["apps"]:
            if table["next"] >= MAX_APPS:
                raise OverflowError("no app uid left below AETHER_SANDBOX_UID_BASE + 1,000,000")
            table["apps"][app_name] = table["next"]
            table["next"] += 1
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        return base + int(table["apps"][app_name])


def _read(path: Path) -> dict:
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"next": 0, "apps": {}}
    if not isinstance(table, dict) or not isinstance(table.get("apps"), dict):
        raise ValueError(f"{path} is not an app uid table; move it away to start a new one")
    return table

"""One unprivileged uid per app when the worker runs as root, unique on the whole host.

An app's processes run as a uid of their own (gid the same, no supplementary groups): with it
an app cannot signal, trace or read the ``/proc`` entries of other apps or the worker, and its
process-count limit (``RLIMIT_NPROC``, which the kernel counts per real uid across the whole
host) counts only its own processes. So the uid must be unique per app on the host, not per
data directory: every worker on the host, whatever its data dir, allocates from one registry
(``AETHER_SANDBOX_UID_REGISTRY``, a root-owned JSON file) under an exclusive ``flock``.

The registry maps ``(apps dir, app name)`` to a uid from ``AETHER_SANDBOX_UID_BASE`` upwards.
A new uid is the lowest one above every uid ever handed out (``next`` only grows, so a number
is never reused, even after its app or data dir is gone) that no live process holds and that
has no ``/etc/passwd`` or ``/etc/group`` entry; the last two also protect against a registry
that was deleted or a program outside Aether using the range. Entries of data dirs that no
longer exist are dropped (their numbers stay retired). The registry file and its folder must
belong to the worker's user and be writable by nobody else: a registry others could edit
would let them make two apps share a uid, so it is refused.
"""

from __future__ import annotations

import fcntl
import grp
import json
import os
import pwd
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UID_LIMIT = 2**31 - 1  # some tools read uids as signed 32-bit numbers; -1 means "none"


def app_uid(registry: Path, apps_dir: Path, app_name: str, *, base: int) -> int:
    """The app's uid, allocated on first use (safe across all workers of the host)."""
    where = str(apps_dir.resolve())
    with _locked(registry):
        table = _read(registry)
        known = table["apps"].get(where, {}).get(app_name)
        if known is not None:
            return int(known)
        _forget_gone_data_dirs(table)
        uid = _free_uid(max(int(table["next"]), base), _uids_in(table) | live_uids())
        table["apps"].setdefault(where, {})[app_name] = uid
        table["next"] = uid + 1
        _write(registry, table)
        return uid


def live_uids() -> set[int]:
    """Every real, effective, saved and filesystem uid of the processes running now."""
    uids: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue  # it ended meanwhile
        for line in status.splitlines():
            if line.startswith("Uid:"):
                uids.update(int(field) for field in line.split()[1:])
                break
    return uids


def _free_uid(candidate: int, taken: set[int]) -> int:
    while candidate in taken or _has_account(candidate):
        candidate += 1
    if candidate > UID_LIMIT:
        raise OverflowError(f"no app uid left at or below {UID_LIMIT}")
    return candidate


def _has_account(uid: int) -> bool:
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            pass
    return False


def _uids_in(table: dict) -> set[int]:
    return {int(uid) for apps in table["apps"].values() for uid in apps.values()}


def _forget_gone_data_dirs(table: dict) -> None:
    for where in [w for w in table["apps"] if not os.path.isdir(w)]:
        del table["apps"][where]


@contextmanager
def _locked(registry: Path) -> Iterator[None]:
    folder = registry.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _require_private(folder, folder)
    lock_path = registry.with_name(registry.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _require_private(fd, lock_path)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _require_private(where: Path | int, name: Path) -> None:
    """Refuse a registry path that anyone but the worker's user could change."""
    info = os.stat(where)
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(
            f"{name} must belong to uid {os.geteuid()} and be writable by nobody else "
            "(AETHER_SANDBOX_UID_REGISTRY): others could make two apps share a uid"
        )


def _read(registry: Path) -> dict:
    try:
        with registry.open(encoding="utf-8") as handle:
            _require_private(handle.fileno(), registry)
            table = json.load(handle)
    except FileNotFoundError:
        return {"next": 0, "apps": {}}
    if not isinstance(table, dict) or not isinstance(table.get("apps"), dict):
        raise ValueError(f"{registry} is not an app uid registry; move it away to start anew")
    return table


def _write(registry: Path, table: dict) -> None:
    tmp = registry.with_name(f".{registry.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", opener=_private_opener) as handle:
        json.dump(table, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())  # a number handed out is never handed out again
    os.replace(tmp, registry)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)

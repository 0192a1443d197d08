"""A lock between every process of the host: ``flock`` on a lock file, waited for without
blocking the event loop.

``flock`` locks belong to an open file description, so two opens in one process exclude each
other as two processes do, and a killed holder releases its lock with its descriptors. A
waiter polls with ``LOCK_NB`` instead of blocking a thread: a holder may itself need a thread
of the loop's pool to finish (hashing, extracting), and waiters parked there could take them
all. A lock file may be deleted by whoever holds it exclusively (nothing is left to lock);
a waiter that then gets the lock of the deleted file notices (the path no longer names the
file it locked) and locks the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aether.worker.outcomes import Retry

_FIRST_POLL_SECS = 0.005
_MAX_POLL_SECS = 0.1


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def try_lock(path: Path, *, shared: bool = False) -> int | None:
    """The descriptor holding the lock, or None when another holder has it (never waits)."""
    fd = _open(path)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not _still_named(fd, path):
        os.close(fd)
        return None
    return fd


@contextlib.asynccontextmanager
async def host_lock(path: Path, *, shared: bool, wait_secs: float) -> AsyncIterator[None]:
    """Hold the lock at ``path`` (shared or exclusive); Retry after ``wait_secs`` of waiting."""
    deadline = time.monotonic() + wait_secs
    delay = _FIRST_POLL_SECS
    while (fd := try_lock(path, shared=shared)) is None:
        if time.monotonic() > deadline:
            raise Retry(f"{path.name} stayed locked by another worker for {wait_secs:.0f}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_POLL_SECS)
    try:
        yield
    finally:
        os.close(fd)

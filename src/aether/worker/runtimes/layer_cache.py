"""The host's cache of extracted dependency layers, shared by every app and worker on the host.

A deps layer (``node_modules``) is extracted once per host, whichever app names it, and every
release folder that uses it links ``node_modules`` to it (read-only in the app's sandbox, see
:mod:`aether.worker.runtimes.confinement`). The cache root is ``AETHER_LAYER_CACHE_DIR``
(default ``<data dir>/layers``); workers with different data dirs share one by naming it:

    <key>/node_modules   the extracted layer
    <key>/seal.json      its seal (:mod:`aether.pack.treeseal`), written last: no seal, unfinished
    .locks/<key>         the layer's host lock (:mod:`aether.worker.runtimes.hostlock`)
    .users/<key>/<id>    one file per release folder linking the layer, holding its path
    .work/               extractions in progress;  .trash/  discarded layers

A key is a format-2 deps layer's digest, or for a format-1 archive the hash of its
``node_modules`` records (:func:`aether.worker.runtimes.layers.split_archive`).

Every step on a layer holds its lock. Using it (shared): its seal's fingerprint must match the
tree, then the release folder is recorded as a user and linked, before the lock is let go.
Making it (exclusive): whoever comes second finds it made. Damage (a fingerprint that differs
and contents that no longer match the seal, or a missing seal) discards the copy and the layer
is made again from its verified archive. Cleanup (:meth:`LayerCache.sweep`) removes a layer
only under its exclusive lock, taken without waiting, and only when no user file names a
release folder that still links to it: a running app's folder does, and so does a starting
one's from the moment it was linked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aether.errors import AetherError
from aether.pack import treeseal, treestamp
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.hostlock import host_lock, try_lock
from aether.worker.runtimes.layers import LAYER_ROOT
from aether.worker.runtimes.trash import discard

SEAL = "seal.json"
LOCK_WAIT_SECS = 600.0  # a layer made by another worker: its download and extraction
_KEY = re.compile(r"[0-9a-f]{64}")

# How a release got its layer (the deployment event says so).
REUSED = "reused"
EXTRACTED = "extracted"
MISSING = "missing"  # (only without a way to make it)

# Fills the folder it is given with a verified ``node_modules`` (and nothing else).
Maker = Callable[[Path], Awaitable[None]]


class LayerCache:
    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self._ready = False

    def layer_path(self, key: str) -> Path:
        return self.root / key / LAYER_ROOT

    def has(self, key: str) -> bool:
        """A made layer is there (a hint: only :meth:`attach` decides, under the lock)."""
        return (self.root / key / SEAL).is_file()

    async def attach(self, key: str, release: Path, make: Maker | None) -> str:
        """Link ``release/node_modules`` to the intact layer ``key``, made first with ``make``
        when it is not cached or its copy is damaged: ``REUSED``, ``EXTRACTED`` or, with
        ``make`` None and no intact copy, ``MISSING`` (nothing linked)."""
        if not _KEY.fullmatch(key):
            raise Fatal(f"a layer key is 64 hex characters, not {key!r}")
        await asyncio.to_thread(self._prepare_root)
        async with self._lock(key, shared=True):
            if await asyncio.to_thread(self._intact, key):
                await asyncio.to_thread(self._link, key, release)
                return REUSED
        async with self._lock(key, shared=False):
            damage = await asyncio.to_thread(self._check, key)
            if damage is None:
                await asyncio.to_thread(self._link, key, release)
                return REUSED
            if make is None:
                return MISSING
            await self._make(key, make)
            await asyncio.to_thread(self._link, key, release)
            return EXTRACTED if damage == MISSING else f"extracted again ({damage})"

    async def damage_under(self, release: Path) -> str | None:
        """Before a release folder made earlier is used again: None when its node_modules is
        its own or links to a cached layer that passes its check (re-sealed if only touched),
        else what is wrong (the damaged copy is discarded: the folder must be made again)."""
        try:
            target = Path(os.readlink(release / LAYER_ROOT))
        except OSError:
            return None  # no link: its node_modules (if any) is its own
        key = target.parent.name
        if target.parent.parent != self.root or not _KEY.fullmatch(key):
            return None  # a layer of the app's own, from before the cache was host-wide
        await asyncio.to_thread(self._prepare_root)
        async with self._lock(key, shared=True):
            if await asyncio.to_thread(self._intact, key):
                return None
        async with self._lock(key, shared=False):
            return await asyncio.to_thread(self._check, key)

    def _lock(self, key: str, *, shared: bool) -> contextlib.AbstractAsyncContextManager[None]:
        return host_lock(self.root / ".locks" / key, shared=shared, wait_secs=LOCK_WAIT_SECS)

    def _prepare_root(self) -> None:
        """The cache folders, once; a root others may write to is refused (they could put
        anything into every app's node_modules)."""
        if self._ready:
            return
        for sub in (".locks", ".users", ".work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        info = os.stat(self.root)
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise Fatal(
                f"the layer cache {self.root} must belong to the worker's user and be writable "
                "by no one else (AETHER_LAYER_CACHE_DIR)"
            )
        self._ready = True

    def _intact(self, key: str) -> bool:
        """Sealed, and the fingerprint matches (one lstat per entry, nothing read)."""
        try:
            seal = treeseal.read_seal(self.root / key / SEAL)
            return seal is not None and treestamp.fingerprint(self.layer_path(key)) == (
                seal.fingerprint
            )
        except (AetherError, OSError):
            return False

    def _check(self, key: str) -> str | None:
        """Under the exclusive lock: None when intact (re-sealed when only the fingerprint
        moved), else why not (``MISSING``, or the damage), the copy then discarded."""
        folder = self.root / key
        if not folder.exists():
            return MISSING
        try:
            seal = treeseal.read_seal(folder / SEAL)
            mark = treestamp.fingerprint(self.layer_path(key)) if seal else None
            if seal is None:
                damage = "an unfinished extraction"
            elif mark == seal.fingerprint:
                return None
            else:
                damage = treeseal.first_difference(self.layer_path(key), seal) or ""
                if not damage:  # touched, copied or restored, with the same contents
                    treeseal.write_seal(folder / SEAL, treeseal.Seal(mark or "", seal.entries))
                    return None
                damage = f"the cached copy was tampered with: {LAYER_ROOT}/{damage}"
        except (AetherError, OSError) as exc:
            damage = f"the cached copy cannot be checked: {exc}"
        discard(self.root, [folder])
        return damage

    async def _make(self, key: str, make: Maker) -> None:
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=self.root / ".work"))
        try:
            await make(work)
            await asyncio.to_thread(self._seal_into_place, key, work)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, work, True)
            raise

    def _seal_into_place(self, key: str, work: Path) -> None:
        extra = sorted(entry.name for entry in work.iterdir() if entry.name != LAYER_ROOT)
        if extra or not (work / LAYER_ROOT).is_dir():
            raise Fatal(f"the layer {key[:12]} must hold {LAYER_ROOT}/ and nothing else")
        os.chmod(work, 0o755)
        folder = self.root / key
        os.rename(work, folder)
        try:
            treeseal.write_seal(folder / SEAL, treeseal.seal_tree(folder / LAYER_ROOT))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _link(self, key: str, release: Path) -> None:
        """Record ``release`` as a user of the layer, then link its node_modules to it (a
        node_modules of its own, left by an extraction that found the layer made meanwhile,
        goes)."""
        release = release.absolute()
        own = release / LAYER_ROOT
        if own.is_dir() and not own.is_symlink():
            discard(self.root, [own])
        users = self.root / ".users" / key
        users.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(os.fsencode(release)).hexdigest()[:32]
        (users / name).write_text(os.fspath(release), encoding="utf-8")
        os.symlink(self.layer_path(key), own, target_is_directory=True)

    def sweep(self) -> list[str]:
        """Remove every layer no release folder links to; a layer whose lock is held (being
        made or used right now) is left for the next sweep. The keys removed."""
        if not self.root.is_dir():
            return []
        removed = []
        for entry in sorted(self.root.iterdir()):
            if _KEY.fullmatch(entry.name) and self._sweep_one(entry.name):
                removed.append(entry.name)
        self._sweep_work()
        return removed

    def _sweep_one(self, key: str) -> bool:
        lock = self.root / ".locks" / key
        fd = try_lock(lock)
        if fd is None:
            return False
        try:
            users = self.root / ".users" / key
            live = False
            for user in sorted(users.iterdir()) if users.is_dir() else []:
                if self._links_here(user, key):
                    live = True
                else:
                    user.unlink(missing_ok=True)
            if live:
                return False
            discard(self.root, [self.root / key])
            shutil.rmtree(users, ignore_errors=True)
            lock.unlink(missing_ok=True)  # (held: a waiter on it notices and locks anew)
            return True
        finally:
            os.close(fd)

    def _links_here(self, user: Path, key: str) -> bool:
        try:
            release = Path(user.read_text(encoding="utf-8"))
            return os.readlink(release / LAYER_ROOT) == os.fspath(self.layer_path(key))
        except (OSError, ValueError):
            return False

    def _sweep_work(self) -> None:
        """Extractions a killed worker left behind (their layer's lock is free)."""
        work = self.root / ".work"
        for entry in sorted(work.iterdir()) if work.is_dir() else []:
            key = entry.name.split(".", 1)[0]
            fd = try_lock(self.root / ".locks" / key) if _KEY.fullmatch(key) else None
            if fd is not None:
                try:
                    shutil.rmtree(entry, ignore_errors=True)
                finally:
                    os.close(fd)

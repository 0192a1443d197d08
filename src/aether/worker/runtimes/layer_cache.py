"""The host's cache of extracted dependency layers, shared by every app and worker on the host.

A deps layer (``node_modules``) is extracted once per host, whichever app names it, and every
release folder that uses it links ``node_modules`` to it (read-only in the app's sandbox, see
:mod:`aether.worker.runtimes.confinement`). The cache root is ``AETHER_LAYER_CACHE_DIR``
(default ``<data dir>/layers``); workers with different data dirs share one by naming it:

    <key>/node_modules   the extracted layer
    <key>/lockfiles/     the lockfiles the layer carries (copied into each release's root)
    <key>/lockfiles.seal.json  their seal, when there are any
    <key>/seal.json      the node_modules seal (:mod:`aether.pack.treeseal`), written last: no
                         seal, unfinished
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
from aether.pack.layered import DEPS_FILES
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.hostlock import host_lock, try_lock
from aether.worker.runtimes.layers import LAYER_ROOT
from aether.worker.runtimes.trash import discard

SEAL = "seal.json"
LOCKFILES = "lockfiles"
LOCKFILES_SEAL = "lockfiles.seal.json"
LOCK_WAIT_SECS = 600.0  # a layer made by another worker: its download and extraction
_KEY = re.compile(r"[0-9a-f]{64}")

# How a release got its layer (the deployment event says so).
REUSED = "reused"
EXTRACTED = "extracted"
MISSING = "missing"  # (only without a way to make it)

# Fills the folder it is given with a verified ``node_modules`` (and at most the lockfiles).
Maker = Callable[[Path], Awaitable[None]]


class LayerCache:
    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self._ready = False
        # seal file -> (what lstat said of it, its fingerprint): a seal holds every file's
        # hash, and parsing it on each release cost more than the fingerprint check itself
        self._fingerprints: dict[Path, tuple[tuple[int, ...], str]] = {}

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
        if not self._ready:
            await asyncio.to_thread(self._prepare_root)
        async with self._lock(key, shared=True):
            # one trip to a thread for the check and the link: a code-only redeploy's path
            if await asyncio.to_thread(self._link_if_intact, key, release):
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

    def _link_if_intact(self, key: str, release: Path) -> bool:
        if not self._intact(key):
            return False
        self._link(key, release)
        return True

    def _intact(self, key: str) -> bool:
        """Sealed, and the fingerprints match (one lstat per entry, nothing read)."""
        try:
            for tree, seal_file in self._sealed_trees(key):
                sealed = self._sealed_fingerprint(seal_file)
                if sealed is None or treestamp.fingerprint(tree) != sealed:
                    return False
            return True
        except (AetherError, OSError):
            return False

    def _sealed_fingerprint(self, seal_file: Path) -> str | None:
        """The fingerprint the seal records, read again only when the seal file changed (a
        rewrite or replacement moves its inode, size, mtime or ctime)."""
        try:
            facts = os.lstat(seal_file)
        except FileNotFoundError:
            return None
        mark = (facts.st_ino, facts.st_size, facts.st_mtime_ns, facts.st_ctime_ns)
        known = self._fingerprints.get(seal_file)
        if known is not None and known[0] == mark:
            return known[1]
        seal = treeseal.read_seal(seal_file)
        if seal is None:
            return None
        self._fingerprints[seal_file] = (mark, seal.fingerprint)
        return seal.fingerprint

    def _sealed_trees(self, key: str) -> list[tuple[Path, Path]]:
        """(tree, its seal file) of a layer: node_modules, and its lockfiles when it has any."""
        folder = self.root / key
        trees = [(self.layer_path(key), folder / SEAL)]
        if (folder / LOCKFILES).exists() or (folder / LOCKFILES_SEAL).exists():
            trees.append((folder / LOCKFILES, folder / LOCKFILES_SEAL))
        return trees

    def _check(self, key: str) -> str | None:
        """Under the exclusive lock: None when intact (re-sealed when only the fingerprint
        moved), else why not (``MISSING``, or the damage), the copy then discarded."""
        folder = self.root / key
        if not folder.exists():
            return MISSING
        try:
            damage = None
            for tree, seal_file in self._sealed_trees(key):
                damage = damage or _tree_damage(tree, seal_file)
        except (AetherError, OSError) as exc:
            damage = f"the cached copy cannot be checked: {exc}"
        if damage is None:
            return None
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
        lockfiles = [name for name in extra if name in DEPS_FILES and _is_file(work / name)]
        if len(lockfiles) < len(extra) or not (work / LAYER_ROOT).is_dir():
            raise Fatal(
                f"the layer {key[:12]} must hold {LAYER_ROOT}/ and nothing else but lockfiles"
            )
        if lockfiles:
            (work / LOCKFILES).mkdir()
            for name in lockfiles:
                os.rename(work / name, work / LOCKFILES / name)
        os.chmod(work, 0o755)
        folder = self.root / key
        os.rename(work, folder)
        try:
            if lockfiles:
                seal = treeseal.seal_tree(folder / LOCKFILES)
                treeseal.write_seal(folder / LOCKFILES_SEAL, seal)
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
        self._copy_lockfiles(key, release)
        users = self.root / ".users" / key
        users.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(os.fsencode(release)).hexdigest()[:32]
        (users / name).write_text(os.fspath(release), encoding="utf-8")
        os.symlink(self.layer_path(key), own, target_is_directory=True)

    def _copy_lockfiles(self, key: str, release: Path) -> None:
        """The layer's lockfiles at the release's root, as the app had them (copies: they are
        small, and the sandbox binds only node_modules from the cache)."""
        source = self.root / key / LOCKFILES
        for name in sorted(os.listdir(source)) if source.is_dir() else []:
            target = release / name
            if os.path.lexists(target):
                raise Fatal(f"the app layer holds {name}, which the deps layer provides")
            temp = release / f".{name}.copy"
            shutil.copyfile(source / name, temp)
            os.chmod(temp, 0o644)
            os.replace(temp, target)

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


def _tree_damage(tree: Path, seal_file: Path) -> str | None:
    """None when ``tree`` matches its seal (re-sealed when only touched, copied or restored
    with the same contents), else what is wrong."""
    seal = treeseal.read_seal(seal_file)
    if seal is None:
        return "an unfinished extraction"
    mark = treestamp.fingerprint(tree)
    if mark == seal.fingerprint:
        return None
    damage = treeseal.first_difference(tree, seal) or ""
    if not damage:
        treeseal.write_seal(seal_file, treeseal.Seal(mark, seal.entries))
        return None
    return f"the cached copy was tampered with: {tree.name}/{damage}"


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()

"""Mirror a project's files into its build folder, so installs and builds never run in it.

Only the project is read: every file that ``.aetherignore`` keeps (no ``.git``, no
``node_modules`` — the build folder gets its own) is copied into the build folder, and whatever
the folder holds beyond that is removed, except its ``node_modules`` folders (the build's cached
full install). A file whose size, mtime and mode match its copy is left alone, so a warm
mirror costs one ``stat`` per file. Copies are reflinks where the file system can (copy on
write: instant, no space), plain copies where not — never hard links: a build step that
rewrites a file in place would then write into the developer's own file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from aether.errors import IOFailure
from aether.pack.ignore import ALWAYS_EXCLUDED_NAMES, IgnoreRules
from aether.pack.walk import DIRECTORY, FILE, Walker

KEPT_NAME = "node_modules"  # never mirrored, never removed from the build folder
_FICLONE = 0x40049409  # ioctl: share the source's blocks (btrfs, XFS, bcachefs…)


@dataclass(eq=False, repr=False)
class MirrorStats:
    files: int = 0
    copied: int = 0
    removed: int = 0


def mirror_project(
    source: Path, dest: Path, *, excluded: tuple[str, ...] = (), skip_unsafe: bool = False
) -> MirrorStats:
    """Make ``dest`` hold exactly the files of ``source`` that get packed (plus node_modules)."""
    rules = IgnoreRules.for_project(
        source, excluded, excluded_names=ALWAYS_EXCLUDED_NAMES | {KEPT_NAME}
    )
    walker = Walker(os.fspath(source), rules, skip_unsafe=skip_unsafe)
    stats = MirrorStats()
    expected: set[str] = set()
    copier = _Copier()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for entry in walker.below(None):
            expected.add(entry.path)
            target = dest / entry.path
            if entry.kind == DIRECTORY:
                _ensure_folder(target)
            elif entry.kind == FILE:
                stats.files += 1
                stats.copied += copier.sync(entry.source, target)
            else:
                _sync_link(entry.target or "", target)
        stats.removed = _remove_extra(dest, "", expected)
    except OSError as exc:
        raise IOFailure(
            f"cannot mirror {source} into the build folder {dest}: {exc.strerror or exc}"
        ) from exc
    return stats


def _ensure_folder(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    target.mkdir(exist_ok=True)


def _sync_link(link_target: str, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if target.is_symlink() and os.readlink(target) == link_target:
            return
        _remove(target)
    os.symlink(link_target, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _remove_extra(dest: Path, prefix: str, expected: set[str]) -> int:
    """Remove what ``dest`` holds beyond ``expected``; node_modules folders stay."""
    removed = 0
    with os.scandir(dest / prefix if prefix else dest) as entries:
        items = list(entries)
    for item in items:
        rel = prefix + item.name
        if item.name == KEPT_NAME and item.is_dir(follow_symlinks=False):
            continue
        if rel not in expected:
            _remove(Path(item.path))
            removed += 1
        elif item.is_dir(follow_symlinks=False):
            removed += _remove_extra(dest, rel + "/", expected)
    return removed


class _Copier:
    """Copies files, by reflink until the file system says it cannot."""

    def __init__(self) -> None:
        self.reflinks = True

    def sync(self, source: str, target: Path) -> int:
        """Copy ``source`` over ``target`` unless they already match; 1 when copied."""
        info = os.stat(source)
        try:
            have = os.lstat(target)
        except FileNotFoundError:
            have = None
        if (
            have is not None
            and have.st_size == info.st_size
            and have.st_mtime_ns == info.st_mtime_ns
            and have.st_mode == info.st_mode
        ):
            return 0
        temp = target.with_name(f".{target.name}.aether-copy")
        self._copy(source, temp)
        os.chmod(temp, info.st_mode & 0o7777)
        os.utime(temp, ns=(info.st_atime_ns, info.st_mtime_ns))
        if have is not None and not os.path.isfile(target):
            _remove(target)
        os.replace(temp, target)
        return 1

    def _copy(self, source: str, temp: Path) -> None:
        if self.reflinks and self._reflink(source, temp):
            return
        shutil.copyfile(source, temp)  # sendfile: the bytes never enter Python

    def _reflink(self, source: str, temp: Path) -> bool:
        import fcntl

        with open(source, "rb") as src, open(temp, "wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
                return True
            except OSError as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                    self.reflinks = False
                    return False
                raise

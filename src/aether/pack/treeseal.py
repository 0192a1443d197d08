"""The seal of an extracted tree: what every entry held once verified, to check before each use.

A worker extracts a dependency layer once and many releases use it for weeks, so the copy on
disk must be checked before each use without reading it all again. A seal records, for every
entry in sorted order, its kind and mode, and for a file its size and blake3, for a symlink
its target: the contents. Apart from them it keeps a *fingerprint* (``treestamp``): the
sha256 of what ``lstat`` says of every entry (inode, mode, size, mtime and ctime in
nanoseconds). Any write, chmod, rename or replacement moves a ctime, which no unprivileged
process can set back, so a matching fingerprint means nothing was touched: one ``lstat`` per
entry, no file read. When
the fingerprint differs (also after the folder was copied or restored), the contents are
hashed again: the same contents re-seal the tree, anything else means a tampered copy.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from aether.errors import IntegrityError
from aether.pack.treestamp import fingerprint

FORMAT = "aether-seal/1"
_CHUNK = 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

# One entry's contents: (path, kind, mode, size, blake3 of a file | target of a symlink | "").
Contents = tuple[str, str, int, int, str]


@dataclass(frozen=True)
class Seal:
    fingerprint: str
    entries: tuple[Contents, ...]

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "fingerprint": self.fingerprint, "entries": self.entries}


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) of every entry below ``root``, sorted by name."""
    with os.scandir(os.path.join(root, rel) if rel else root) as listing:
        items = sorted(listing, key=lambda item: item.name)
    for item in items:
        path = f"{rel}/{item.name}" if rel else item.name
        info = item.stat(follow_symlinks=False)
        yield path, item.path, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(root, path)


def _contents(path: str, full: str, info: os.stat_result) -> Contents:
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return (path, "symlink", mode, 0, os.readlink(full))
    if stat.S_ISDIR(info.st_mode):
        return (path, "dir", mode, 0, "")
    if not stat.S_ISREG(info.st_mode):
        return (path, "other", mode, 0, "")
    hasher = blake3.blake3()
    fd = os.open(full, _OPEN_FLAGS)
    try:
        while chunk := os.read(fd, _CHUNK):
            hasher.update(chunk)
    finally:
        os.close(fd)
    return (path, "file", mode, info.st_size, hasher.hexdigest())


def contents(root: Path) -> tuple[Contents, ...]:
    """Every entry's kind, mode and contents (files read and hashed)."""
    return tuple(_contents(*item) for item in _walk(os.fspath(root)))


def seal_tree(root: Path) -> Seal:
    """Hash the tree and fingerprint it: the fingerprint is taken first, so a write during
    the hashing makes the next check hash again rather than trust stale contents."""
    mark = fingerprint(root)
    return Seal(mark, contents(root))


def first_difference(root: Path, seal: Seal) -> str | None:
    """None when the tree holds exactly the sealed contents, else what differs first."""
    found = {entry[0]: entry for entry in contents(root)}
    for entry in seal.entries:
        now = found.pop(entry[0], None)
        if now is None:
            return f"{entry[0]} is missing"
        if now != entry:
            return f"{entry[0]} was changed"
    if found:
        return f"{min(found)} was added"
    return None


def write_seal(path: Path, seal: Seal) -> None:
    """The seal as JSON, in place atomically (a reader sees the old seal or the new one)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(seal.as_json(), separators=(",", ":")), encoding="utf-8")
    os.replace(temp, path)


def read_seal(path: Path) -> Seal | None:
    """The seal at ``path``; None when there is none; IntegrityError when it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"the seal {path} cannot be read: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntegrityError(f"the seal {path} is not of format {FORMAT}")
    try:
        entries = tuple(
            (str(a), str(b), int(c), int(d), str(e)) for a, b, c, d, e in data["entries"]
        )
        return Seal(str(data["fingerprint"]), entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"the seal {path} is malformed: {exc}") from exc

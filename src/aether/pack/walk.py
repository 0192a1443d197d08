"""The sorted walk of a project tree: what goes into the artifact, in which order.

Entries are directories, regular files and symlinks whose target stays inside the tree; they
come out sorted by the bytes of their member name (the relative POSIX path, with a trailing
``/`` for directories, so every directory's subtree is contiguous), so the order never depends
on the file system. Anything else (sockets, FIFOs, devices, absolute or escaping symlinks) is an
error naming the path, or, with ``skip_unsafe``, reported through ``on_skip`` and left out.
Only directory entries are read here (no ``stat`` per file): readers stat what they open.
Folders of nothing but plainly named files and folders are listed by a C extension
(``_scanfolder``) when it is built and no ignore pattern is set, which then also walks the
tree (depth first, sorted, each folder listed when the walk reaches it) and asks the Python
listing only for the other folders; the same entries either way. For the reader threads the
native walk also fills batches (``new_batch``, ``_scanfolder.Batch``) in which the entries
it listed stay names in C: an ``Entry`` is made only where Python asks for one.

A walker may *mount* other folders into the tree (``mounts``: member path → folder): the staged
build packs the app's files from its build folder and ``node_modules`` from the cached
production install, composed only here, without copying either.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from aether.errors import IOFailure, UsageError
from aether.pack.ignore import IgnoreRules

FILE = "file"
DIRECTORY = "dir"
SYMLINK = "symlink"
# Manifests and pax records are UTF-8; such a name could not be listed faithfully.
NOT_UTF8 = "its name or link target is not valid UTF-8"


class Entry(NamedTuple):
    """One archive member: relative path (str and bytes), kind, location, symlink target."""

    path: str
    raw: bytes  # what orders the archive: UTF-8 path bytes, with "/" after directories
    kind: str
    source: str  # the path to open
    target: str | None = None


# An Entry from a tuple, without the Python-level __new__ of a named tuple: once per file.
_new_entry = partial(tuple.__new__, Entry)

try:  # lists folders of plain files and folders natively; the code below does the rest
    from aether.pack._scanfolder import Batch, scan, walk

    scan_folder_native: Callable[..., list[Entry] | None] | None = scan
    walk_native: Callable[..., Iterator[Entry]] | None = walk
    new_batch_native: Callable[[], Batch] | None = partial(Batch, _new_entry)
except ImportError:  # not built: the Python listing does it all
    scan_folder_native = None
    walk_native = None
    new_batch_native = None


def walk_tree(
    root: Path,
    rules: IgnoreRules,
    *,
    skip_unsafe: bool = False,
    on_skip: Callable[[str, str], None] | None = None,
) -> list[Entry]:
    """All entries under ``root`` (root itself excluded), sorted by member-name bytes."""
    walker = Walker(os.fspath(root), rules, skip_unsafe=skip_unsafe, on_skip=on_skip)
    return list(walker.below(None))


@dataclass(frozen=True, eq=False, repr=False)
class Walker:
    """Lists a tree's folders in archive order; ``below`` walks one subtree lazily.

    Depth-first, each folder's children sorted by member name: that is exactly the global
    order (a directory's name ends with ``/``, so its subtree is contiguous). Subtrees are
    independent of each other, which lets the packer walk them in separate processes.
    """

    root: str
    rules: IgnoreRules
    skip_unsafe: bool = False
    on_skip: Callable[[str, str], None] | None = None
    real_root: str = ""
    # (member path, folder): a folder packed in place of (or beside) what the tree holds there
    mounts: tuple[tuple[str, str], ...] = ()
    # where symlinks may resolve besides the root (the real folders that hold the mounts)
    real_bases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.real_root:
            object.__setattr__(self, "real_root", os.path.realpath(self.root))

    def source_path(self, member: str) -> str:
        """The file on disk that holds archive member ``member``."""
        for path, folder in self.mounts:
            if member == path or member.startswith(path + "/"):
                return folder + member[len(path) :]
        return os.path.join(self.root, member)

    def _mounted(self, found: list[Entry], prefix: str) -> list[Entry]:
        """``found`` with the mounts of this folder put in place of what the tree holds."""
        here = {path: folder for path, folder in self.mounts if _parent(path) == prefix}
        if not here:
            return found
        kept = [entry for entry in found if entry.path not in here]
        for path, folder in here.items():
            kept.append(Entry(path, (path + "/").encode("utf-8"), DIRECTORY, folder))
        kept.sort(key=itemgetter(1))
        return kept

    def children(self, folder: Entry | None) -> list[Entry]:
        """The sorted entries directly inside ``folder`` (``None``: the root)."""
        if folder is None:
            path, prefix = self.root, ""
        else:
            path, prefix = folder.source, folder.path + "/"
        plain = self.rules.plain_exclusions()
        if scan_folder_native is not None and plain is not None:
            found = scan_folder_native(path, prefix, *plain, _new_entry)
            if found is not None:
                found.sort(key=itemgetter(1))
                return self._mounted(found, prefix) if self.mounts else found
        found = []
        rules = self.rules
        file_ignored = rules.file_filter()
        # Files and folders, nearly every entry, take the short branches; symlinks and
        # anything odd go through _classify.
        for item in _scan(path):
            name = item.name
            rel = prefix + name
            try:
                if item.is_file(follow_symlinks=False):
                    if file_ignored(rel):
                        continue
                    found.append(_new_entry((rel, rel.encode("utf-8"), FILE, item.path, None)))
                    continue
                if item.is_dir(follow_symlinks=False):
                    if rules.ignored(rel, name, is_dir=True):
                        continue
                    raw = (rel + "/").encode("utf-8")
                    found.append(_new_entry((rel, raw, DIRECTORY, item.path, None)))
                    continue
            except OSError as exc:
                raise IOFailure(f"cannot inspect {rel}: {exc.strerror or exc}") from exc
            except UnicodeEncodeError:
                self._refuse(rel, NOT_UTF8)
                continue
            entry = _classify(item, rel, (self.real_root, *self.real_bases), rules)
            if isinstance(entry, str):
                self._refuse(rel, entry)
            elif entry is not None:
                found.append(entry)
        found.sort(key=itemgetter(1))
        return self._mounted(found, prefix) if self.mounts else found

    def below(self, folder: Entry | None) -> Iterator[Entry]:
        """Every entry under ``folder`` (``None``: the root), itself excluded, in order."""
        plain = self.rules.plain_exclusions()
        if walk_native is not None and scan_folder_native is not None and plain is not None:
            # The same order natively; folders the native listing does not take (and those
            # that hold mounts) come from ``children``.
            # Lazily, a folder at a time: the GIL is held for one listing, not a subtree.
            by_children = frozenset(_parent(path) for path, _ in self.mounts)
            return walk_native(self.root, folder, *plain, _new_entry, self.children, by_children)
        return self._below(folder)

    def new_batch(self) -> Callable[[], Batch] | None:
        """What makes an empty native batch, when ``below`` walks natively (else None).

        Such a walk then also fills batches (``fill``): the entries it lists natively stay
        names in C, and become ``Entry`` tuples only where Python asks for them.
        """
        if walk_native is None or self.rules.plain_exclusions() is None:
            return None
        return new_batch_native

    def _below(self, folder: Entry | None) -> Iterator[Entry]:
        # An explicit stack instead of recursion: no depth limit on deeply nested trees.
        stack = [iter(self.children(folder))]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                continue
            yield entry
            if entry.kind == DIRECTORY:
                stack.append(iter(self.children(entry)))

    def _refuse(self, rel: str, reason: str) -> None:
        if not self.skip_unsafe:
            raise UsageError(
                f"cannot pack {rel}: {reason}; remove it, list it in .aetherignore, "
                "or pass --skip-unsafe to leave it out"
            )
        if self.on_skip is not None:
            self.on_skip(rel, reason)


def _scan(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as iterator:
            return list(iterator)
    except OSError as exc:
        raise IOFailure(f"cannot read the folder {folder}: {exc.strerror or exc}") from exc


def _parent(path: str) -> str:
    """The prefix ``children`` uses for the folder holding ``path`` ("" for the root)."""
    head, _, _ = path.rpartition("/")
    return head + "/" if head else ""


def _classify(
    item: os.DirEntry[str], rel: str, real_roots: tuple[str, ...], rules: IgnoreRules
) -> Entry | str | None:
    """An Entry, None when ignored, or the reason the path cannot be packed."""
    try:  # strict UTF-8: a name that is not is refused
        return _classify_entry(item, rel, real_roots, rules)
    except UnicodeEncodeError:
        return NOT_UTF8


def _classify_entry(
    item: os.DirEntry[str], rel: str, real_roots: tuple[str, ...], rules: IgnoreRules
) -> Entry | str | None:
    """Anything but a regular file or a folder: a symlink, or what cannot be packed."""
    try:
        is_symlink = item.is_symlink()
    except OSError as exc:
        raise IOFailure(f"cannot inspect {rel}: {exc.strerror or exc}") from exc
    if rules.ignored(rel, item.name, is_dir=False):
        return None
    if is_symlink:
        return _symlink(item, rel, real_roots)
    return "it is a socket, FIFO or device, which an artifact cannot hold"


def _symlink(item: os.DirEntry[str], rel: str, real_roots: tuple[str, ...]) -> Entry | str:
    try:
        target = os.readlink(item.path)
    except OSError as exc:
        raise IOFailure(f"cannot read the symlink {rel}: {exc.strerror or exc}") from exc
    if posixpath.isabs(target):
        return f"it is a symlink to the absolute path {target}"
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    resolved = os.path.realpath(item.path)
    inside = any(resolved == root or resolved.startswith(root + os.sep) for root in real_roots)
    if lexical == ".." or lexical.startswith("../") or not inside:
        return f"it is a symlink to {target}, outside the project"
    target.encode("utf-8")
    return Entry(rel, rel.encode("utf-8"), SYMLINK, item.path, target)

"""Safe, atomic extraction of an artifact (used by the local runtime and ``aether fetch``).

Everything is extracted into a fresh temporary folder beside the target and renamed into place
at the end, so a reader never sees half an app and a refused archive leaves nothing behind.
Refused, with an error naming the entry: absolute paths, ``..`` components, symlinks or
hardlinks resolving outside the root (checked against the whole archive once every link is
known), writes through a symlink, device/FIFO/other entries, duplicate entries, more than
``max_entries`` members, and decompression bombs: an archive whose uncompressed tar or whose
files add up to more than the :class:`~aether.settings.ExpansionLimits` allow (a size limit
and a ratio to the compressed size) is refused on the entry that crosses the line, before its
data is written (a declared size says so at its header). Setuid, setgid and sticky bits are
stripped. Files are created with ``O_EXCL | O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aether.errors import IntegrityError, IOFailure
from aether.pack.reader import (
    STREAM_ERRORS,
    ArchiveBomb,
    Cap,
    expansion_cap,
    open_tar,
    open_tar_stream,
)
from aether.settings import ExpansionLimits

_CHUNK = 1024 * 1024
_MAX_LINK_HOPS = 40
_MAX_NAME_BYTES = 255  # NAME_MAX on Linux
_MAX_PATH_BYTES = 3072  # below PATH_MAX (4096) with room for the folder extracted into
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafeArchive(IntegrityError):
    """An archive entry that would escape the target or abuse the extractor (exit 20)."""

    code = "unsafe_archive"


@dataclass
class _State:
    root: Path
    max_entries: int
    cap: Cap  # on the files' declared sizes, the same as the stream's
    kinds: dict[str, str] = field(default_factory=dict)  # path → file | dir | implicit | symlink
    symlinks: dict[str, str] = field(default_factory=dict)
    dir_modes: dict[str, int] = field(default_factory=dict)
    entries: int = 0
    bytes: int = 0


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    limits: ExpansionLimits | None = None,
    max_entries: int = 500_000,
    replace: bool = False,
) -> int:
    """Extract ``archive`` (tar, tar.gz or tar.zst) to ``dest``; returns the entry count.

    ``dest`` must not exist or be an empty folder, unless ``replace`` swaps it out.
    ``limits``: how far the archive may expand (default: :class:`ExpansionLimits`' defaults).
    """
    limits = limits or ExpansionLimits()
    dest = dest.absolute()
    _check_destination(dest, replace)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    except OSError as exc:
        raise IOFailure(f"cannot create a folder beside {dest}: {exc.strerror or exc}") from exc
    try:
        state = _State(temp, max_entries, expansion_cap(limits, _size_of(archive)))
        _extract_members(archive, state, limits)
        _check_symlinks(state)
        _apply_dir_modes(state)
        _move_into_place(temp, dest, replace)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return state.entries


def _check_destination(dest: Path, replace: bool) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise IOFailure(f"{dest} exists and is not a folder; remove it or choose another target")
    if dest.is_dir() and any(dest.iterdir()) and not replace:
        raise IOFailure(f"{dest} already exists and is not empty; extract into a new folder")


def _move_into_place(temp: Path, dest: Path, replace: bool) -> None:
    os.chmod(temp, 0o755)
    try:
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        if not dest.exists():
            os.rename(temp, dest)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.rename(dest, old / "tree")
        os.rename(temp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise IOFailure(f"cannot move the extracted tree to {dest}: {exc.strerror or exc}") from exc


def _refuse(name: str, reason: str) -> UnsafeArchive:
    return UnsafeArchive(f"refusing to extract entry {name!r}: {reason}; nothing was extracted")


def _extract_members(archive: Path, state: _State, limits: ExpansionLimits) -> None:
    with open_tar_stream(archive, limits=limits) as stream:
        try:
            tar = open_tar(stream)
            for member in tar:
                state.entries += 1
                if state.entries > state.max_entries:
                    raise _refuse(
                        member.name, f"the archive has more than {state.max_entries} entries"
                    )
                _extract_one(tar, member, state)
        except STREAM_ERRORS as exc:
            raise IntegrityError(f"{archive.name} is not a readable archive: {exc}") from exc
        except OSError as exc:
            raise IOFailure(f"cannot extract {archive.name}: {exc.strerror or exc}") from exc


def _size_of(archive: Path) -> int:
    try:
        return archive.stat().st_size
    except OSError as exc:
        raise IOFailure(f"cannot read {archive}: {exc.strerror or exc}") from exc


def _normalise(name: str) -> str:
    """The member's relative path without ``./`` and trailing slashes; refuses unsafe names."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse(name, "it is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse(name, "it has a '..' component")
    if "\0" in name:
        raise _refuse(name, "it contains a NUL byte")
    _check_length(name, parts)
    return "/".join(parts)


def _check_length(name: str, parts: list[str]) -> None:
    """Refused up front with its reason, rather than as ENAMETOOLONG halfway through."""
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in parts), default=0)
    if longest > _MAX_NAME_BYTES:
        raise _refuse(name[:80] + "…", f"a name in its path is too long ({longest} bytes)")
    total = len("/".join(parts).encode("utf-8", "surrogateescape"))
    if total > _MAX_PATH_BYTES:
        raise _refuse(name[:80] + "…", f"its path is too long ({total} bytes)")


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, state: _State) -> None:
    name = _normalise(member.name)
    if name == "":
        if member.isdir():
            return  # the archive's own root ("./")
        raise _refuse(member.name, "it has an empty path")
    if name in state.kinds and not (member.isdir() and state.kinds[name] == "implicit"):
        raise _refuse(name, "it appears more than once in the archive")
    _make_parents(name, state)
    if member.isreg():
        _write_file(tar, member, name, state)
    elif member.isdir():
        _make_dir(name, member.mode, state)
    elif member.issym():
        _make_symlink(name, member.linkname, state)
    elif member.islnk():
        _make_hardlink(name, member.linkname, state)
    else:
        raise _refuse(name, "it is a device, FIFO or other special file")


def _make_parents(name: str, state: _State) -> None:
    parts = name.split("/")[:-1]
    for index in range(1, len(parts) + 1):
        parent = "/".join(parts[:index])
        kind = state.kinds.get(parent)
        if kind in ("dir", "implicit"):
            continue
        if kind is not None:
            raise _refuse(name, f"its parent {parent} is a {kind}, not a folder")
        os.mkdir(state.root / parent, 0o700)
        state.kinds[parent] = "implicit"


def _make_dir(name: str, mode: int, state: _State) -> None:
    if state.kinds.get(name) != "implicit":
        os.mkdir(state.root / name, 0o700)
    state.kinds[name] = "dir"
    state.dir_modes[name] = mode & 0o777


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, state: _State) -> None:
    state.bytes += member.size
    if state.bytes > state.cap.bytes:
        # Refused at the header, on the declared size: nothing of it reaches the disk.
        raise ArchiveBomb(
            f"refusing the archive as a decompression bomb at entry {name!r}: the files"
            f" would add up to more than {state.cap.bytes:,} bytes; {state.cap.reason};"
            " nothing was extracted"
        )
    source = tar.extractfile(member)
    assert source is not None  # a regular member always has data
    fd = os.open(state.root / name, _FILE_FLAGS, 0o600)
    with os.fdopen(fd, "wb") as handle:
        shutil.copyfileobj(source, handle, _CHUNK)
        os.fchmod(handle.fileno(), member.mode & 0o777)
    state.kinds[name] = "file"


def _make_symlink(name: str, target: str, state: _State) -> None:
    if "\0" in target or not target:
        raise _refuse(name, "it is a symlink with an empty target or one holding a NUL byte")
    if target.startswith("/"):
        raise _refuse(name, f"it is a symlink to the absolute path {target}")
    if _resolve(name, target, {}) is None:
        raise _refuse(name, f"it is a symlink to {target}, outside the target folder")
    os.symlink(target, state.root / name)
    state.kinds[name] = "symlink"
    state.symlinks[name] = target


def _make_hardlink(name: str, target: str, state: _State) -> None:
    source = _normalise(target)
    if state.kinds.get(source) != "file":
        raise _refuse(
            name, f"it is a hardlink to {target}, which is not a file extracted before it"
        )
    os.link(state.root / source, state.root / name, follow_symlinks=False)
    state.kinds[name] = "file"


def _resolve(name: str, target: str, symlinks: dict[str, str]) -> str | None:
    """Where ``name → target`` points, following the archive's symlinks; None if it escapes."""
    stack = name.split("/")[:-1]
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        link = symlinks.get("/".join(stack))
        if link is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS or link.startswith("/"):
                return None
            stack.pop()
            pending = link.split("/") + pending
    return "/".join(stack)


def _check_symlinks(state: _State) -> None:
    # Checked again with every link known: `a -> .` then `b -> a/..` escapes only via `a`.
    for name, target in state.symlinks.items():
        if _resolve(name, target, state.symlinks) is None:
            raise _refuse(
                name, f"it is a symlink to {target}, which resolves outside the target folder"
            )


def _apply_dir_modes(state: _State) -> None:
    # Deepest first, and never without owner access, so the tree stays manageable.
    for name in sorted(state.dir_modes, key=lambda path: path.count("/"), reverse=True):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(state.root / name, state.dir_modes[name] | 0o700)

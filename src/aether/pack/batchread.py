"""A batch of walk entries → tar members, their file records and the manifest's lists.

``read_batch`` is the native reader (``_batchread``, a C extension built with the package)
when it is there, else ``read_batch_python``; both write the same bytes and records (tests
run both). Per member a pack makes a few system calls between bits of Python; the native
reader makes them for a whole batch in one call, reads each file straight behind its header
and hashes it there. Nothing on PyPI does this: the tar writers (``tarfile``, libarchive-c,
fastar over Rust's tar crate) take each file's owner, times and modes into headers of their
own making and hand no file data back, so they would change the artifact's bytes and every
file would be read twice to hash it.

A call takes ``entries[start:]`` in order until it has read ``budget`` bytes of file data and
returns ``(blob, next, status)``: the members' bytes (from the native reader a read-only
memoryview of the buffer it read them into, no copy), the index of the first entry not in them,
and why it stopped there: ``DONE`` (all read, or the budget is spent), ``LARGE`` (a file above
``inline_max``, for the caller to stream) or, from the native reader only, ``CAREFUL`` (the
entry is out of the ordinary, say unreadable, and the Python reader takes over from it and
names the problem). ``entries`` is a list of ``Entry``, or a native walk's ``Batch``
(``walk.Walker.new_batch``), whose natively listed entries the native reader reads with no
Python object each; ``batch[index]`` gives the Python reader the same ``Entry``. File
records go to ``files`` in order, directory paths to
``directories``, (path, target) pairs to ``symlinks``. The native reader opens, reads, hashes
and frames a batch's files without the GIL, so threads read in parallel (``threaded``), and
keeps a few buffers from one call to the next, which ``drop_spares`` frees. It hashes with
BLAKE3's own C code (``vendor/blake3``); this reader with the blake3 package, the reference
(a test holds them equal).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from stat import S_ISREG
from typing import Any

import blake3

from aether.errors import IOFailure
from aether.pack import tarcodec
from aether.pack.walk import DIRECTORY, FILE, Entry

DONE = 0
LARGE = 1
CAREFUL = 2
# O_NONBLOCK: a FIFO put where a file was walked must not hang the open (it changes nothing
# for regular files).
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

# A batch's tar bytes: ``bytes``, or a read-only memoryview from the native reader.
Members = bytes | memoryview
Reader = Callable[..., tuple[Members, int, int]]


def read_batch_python(
    entries: Sequence[Entry],
    start: int,
    mtime: bytes,
    budget: int,
    inline_max: int,
    files: list[Any],
    directories: list[str],
    symlinks: list[tuple[str, str]],
    new_record: Callable[..., Any] = tuple,
) -> tuple[bytes, int, int]:
    """The reference reader: the same contract as the native one, but never ``CAREFUL``.

    It raises IOFailure for what cannot be read. The hot loop of a pack without the
    extension (once per member): kept flat on purpose.
    """
    parts: list[bytes] = []
    file_header = tarcodec.file_header
    paddings = tarcodec.PADDINGS
    block = tarcodec.BLOCK
    index = start
    end = len(entries)
    while index < end:
        entry = entries[index]
        kind = entry.kind
        size = 0
        if kind == FILE:
            try:
                fd = os.open(entry.source, OPEN_FLAGS)
            except OSError as exc:
                raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
            try:
                stat = os.fstat(fd)
                size = stat.st_size
                if not S_ISREG(stat.st_mode):
                    raise IOFailure(
                        f"{entry.path} stopped being a regular file while packing; pack again"
                    )
                if size > inline_max:
                    return b"".join(parts), index, LARGE
                data = read_exact(fd, size, entry)
            except OSError as exc:
                raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
            finally:
                os.close(fd)
            mode = tarcodec.EXEC_MODE if stat.st_mode & 0o111 else tarcodec.FILE_MODE
            parts += (file_header(entry.raw, mode, size, mtime), data, paddings[size % block])
            files.append(new_record((entry.path, size, mode, blake3.blake3(data).hexdigest())))
        elif kind == DIRECTORY:
            parts.append(tarcodec.directory_header(entry.raw, mtime))
            directories.append(entry.path)
        else:
            target = entry.target or ""
            link = target.encode("utf-8", "surrogateescape")
            parts.append(tarcodec.symlink_header(entry.raw, link, mtime))
            symlinks.append((entry.path, target))
        index += 1
        budget -= size
        if budget <= 0:
            break
    return b"".join(parts), index, DONE


def read_exact(fd: int, size: int, entry: Entry) -> bytes:
    """``size`` bytes from ``fd``; IOFailure when the file ends sooner."""
    try:
        data = os.read(fd, size) if size else b""
        while len(data) < size:
            more = os.read(fd, size - len(data))
            if not more:
                raise IOFailure(f"{entry.path} shrank while packing; pack again")
            data += more
    except OSError as exc:
        raise IOFailure(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    return data


def _no_spares() -> None:
    """What ``drop_spares`` is without the native reader: it keeps no memory."""


def _native() -> tuple[Reader | None, Callable[[], None]]:
    try:
        from aether.pack._batchread import drop_spares, read_batch
    except ImportError:  # not built (no compiler at install time): the Python reader does
        return None, _no_spares
    return read_batch, drop_spares


native_read_batch, drop_spares = _native()
read_batch: Reader = native_read_batch or read_batch_python

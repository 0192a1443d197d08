"""An archive's file index written while the archive is still being compressed.

The index (``manifest.write_manifest``'s format) names the archive's digest and sizes, known
only once the compressor is done, but nearly all of its bytes are the file lines, rendered
as soon as the last member is read (``manifest.render_ahead``). On a big tree, writing them
(10 MB for 54,000 files) took the one busy core's time after the compressor had finished;
now they go into the temporary file while the compressor finishes its last blocks, at the
offset they will have: what precedes them (the archive's name and digest, the directories)
has the same length whatever the digest's value. Afterwards the head and the tail are
written around them and the file is hashed in order. The bytes are exactly those of
``write_manifest`` (a test compares them), which writes the index whenever they were not
rendered ahead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from aether.errors import IOFailure
from aether.pack.manifest import manifest_pieces, piece_bytes, write_manifest
from aether.pack.partial import create_partial

HEX_DIGEST = "0" * 64  # a placeholder as long as any sha256 hex digest


class IndexAhead:
    """``write_lines`` while compressing, then ``finish`` once the digest is known; used as
    a context manager, which removes the temporary file when ``finish`` did not run."""

    def __init__(self, folder: Path, label: str) -> None:
        self._folder = folder
        self._label = label
        self._fd: int | None = None
        self._temp = ""
        self._lines = b""
        self._head_size = 0

    def __enter__(self) -> IndexAhead:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._discard()

    def write_lines(self, draft: dict[str, Any]) -> None:
        """Write the file lines of ``draft`` (the index with placeholders as long as the
        final values) where they belong; nothing when they were not rendered ahead."""
        pieces = list(manifest_pieces(draft))
        lines = _rendered_lines(draft, pieces)
        if lines is None:
            return
        self._head_size = sum(
            len(piece_bytes(piece)) for piece in pieces[: _position(pieces, lines)]
        )
        try:
            fd, self._temp = create_partial(self._folder, f".{self._label}.", ".manifest.partial")
            self._fd = fd
            _write_at(fd, lines, self._head_size)
        except OSError as exc:
            raise IOFailure(
                f"cannot write the {self._label} index in {self._folder}: {exc.strerror or exc}"
            ) from exc
        self._lines = lines

    def finish(self, path: Path, data: dict[str, Any]) -> str:
        """The index of ``data`` at ``path``; returns its sha256 (hex)."""
        pieces = list(manifest_pieces(data))
        lines = _rendered_lines(data, pieces)
        fd = self._fd
        if fd is None or lines is not self._lines:
            self._discard()
            return write_manifest(path, data)
        at = _position(pieces, lines)
        head = b"".join(piece_bytes(piece) for piece in pieces[:at])
        tail = b"".join(piece_bytes(piece) for piece in pieces[at + 1 :])
        if len(head) != self._head_size:  # not the draft's shape: written the plain way
            self._discard()
            return write_manifest(path, data)
        try:
            _write_at(fd, head, 0)
            _write_at(fd, tail, len(head) + len(lines))
            os.fchmod(fd, 0o644)
            self._fd = None
            os.close(fd)
            os.replace(self._temp, path)
        except OSError as exc:
            raise IOFailure(f"cannot write {path}: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(head)
        digest.update(lines)
        digest.update(tail)
        return digest.hexdigest()

    def _discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._temp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp)
            self._temp = ""


def _rendered_lines(data: dict[str, Any], pieces: list[str | bytes]) -> bytes | None:
    """The file lines rendered ahead, as ``pieces`` holds them (the very object)."""
    lines = getattr(data.get("files"), "lines", None)
    if not isinstance(lines, bytes) or _position(pieces, lines) < 0:
        return None
    return lines


def _position(pieces: list[str | bytes], lines: bytes) -> int:
    return next((index for index, piece in enumerate(pieces) if piece is lines), -1)


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written

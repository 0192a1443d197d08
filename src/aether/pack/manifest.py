"""The manifest beside an artifact: every entry with its size, mode and blake3, plus totals.

It records the artifact ``digest`` (sha256 of the compressed file) and, for a single-file
artifact, ``tar_sha256`` (of the uncompressed tar), which format-1 readers expect. A layer's
file index leaves it out: the layer's digest and the index itself pin the layer (see
``artifact_manifest.TAR_SHA256``). The JSON is written with sorted keys and no timestamps:
the same tree gives the same manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from aether.errors import IntegrityError, IOFailure
from aether.pack.packer import FileRecord, TreeContents
from aether.pack.partial import create_partial

FORMAT = "aether-manifest/1"
_json_string = json.encoder.encode_basestring  # what json.dumps uses with ensure_ascii=False
_MODE_TEXT = {mode: f"{mode:04o}" for mode in (0o644, 0o755)}
_SLICE_ITEMS = 4096


def _native() -> Callable[[list[FileRecord]], bytes | None] | None:
    try:
        from aether.pack._manifest import file_lines
    except ImportError:  # not built (no compiler at install time): the Python code renders
        return None
    return file_lines


_native_file_lines = _native()


def build_manifest(
    contents: TreeContents,
    *,
    artifact_name: str,
    compression: str,
    digest: str,
    tar_sha256: str | None,
    size_bytes: int,
    source_date_epoch: int,
) -> dict[str, Any]:
    """The manifest's data; without ``tar_sha256`` (None) it has no such key."""
    recorded = {"tar_sha256": tar_sha256} if tar_sha256 is not None else {}
    return {
        "format": FORMAT,
        "artifact": artifact_name,
        "compression": compression,
        "digest": digest,
        "size_bytes": size_bytes,
        **recorded,
        "source_date_epoch": source_date_epoch,
        "totals": {
            "files": len(contents.files),
            "directories": len(contents.directories),
            "symlinks": len(contents.symlinks),
            "bytes": contents.bytes_in,
        },
        # Items become JSON objects one at a time while the file is written (see _item):
        # 50,000 dicts held at once would cost tens of MB for nothing.
        "files": (
            _Rendered(contents.files_lines) if contents.files_lines is not None else contents.files
        ),
        "directories": contents.directories,
        "symlinks": contents.symlinks,
    }


def render_ahead(contents: TreeContents) -> None:
    """Render the manifest's lines for the files now (say, while the archive's compression
    ends), for ``build_manifest`` to use; the records must not change afterwards."""
    if contents.files:
        contents.files_lines = file_lines(contents.files)


def file_lines_python(records: list[FileRecord]) -> bytes:
    """The lines of a non-empty file list, in UTF-8 (the reference ``_manifest.file_lines``
    matches)."""
    return "".join(_list_lines(records)).encode("utf-8")


def file_lines(records: list[FileRecord]) -> bytes:
    """``file_lines_python``, natively (``_manifest``, built with the package) where it can."""
    rendered = _native_file_lines(records) if _native_file_lines is not None else None
    return rendered if rendered is not None else file_lines_python(records)


@dataclass(frozen=True, eq=False, repr=False)
class _Rendered:
    """A non-empty manifest list whose lines were rendered ahead (``render_ahead``)."""

    lines: bytes


def _item(value: object) -> object:
    """A manifest list item as JSON data: file records and symlink pairs become objects."""
    if isinstance(value, FileRecord):
        return {
            "blake3": value.blake3,
            "mode": f"{value.mode:04o}",
            "path": value.path,
            "size": value.size,
        }
    if isinstance(value, tuple):
        path, target = value
        return {"path": path, "target": target}
    return value


def _files_json(records: list[FileRecord]) -> list[str]:
    """``json.dumps(_item(record), sort_keys=True, ensure_ascii=False)`` for each record, in
    one comprehension: several times faster, on the manifest's longest list."""
    modes = _MODE_TEXT
    # A hex digest needs no escaping.
    return [
        f'{{"blake3": "{blake3}", "mode": "{modes.get(mode) or f"{mode:04o}"}", '
        f'"path": {_json_string(path)}, "size": {size:d}}}'
        for path, size, mode, blake3 in records
    ]


def _items_json(items: list[Any]) -> list[str]:
    if isinstance(items[0], FileRecord):
        return _files_json(items)
    return [
        _json_string(item)
        if isinstance(item, str)
        else json.dumps(_item(item), sort_keys=True, ensure_ascii=False)
        for item in items
    ]


def write_manifest(
    path: Path, data: dict[str, Any], *, before_replace: Callable[[], None] | None = None
) -> str:
    """Sorted JSON with one list item per line; returns the file's sha256 (hex).

    ``json`` falls back to its pure-Python encoder whenever ``indent`` is set, which costs
    seconds on 50,000 files; encoding each item compactly keeps the C encoder and the file
    still reads (and diffs) one entry per line. The bytes are hashed as they are written, not
    read back. ``before_replace`` runs once the file is written, before it takes the place
    of an older one.
    """
    digest = hashlib.sha256()

    def dump(handle: BinaryIO) -> None:
        for piece in manifest_pieces(data):
            raw = piece_bytes(piece)
            digest.update(raw)
            handle.write(raw)

    _write_atomic(path, dump, before_replace)
    return digest.hexdigest()


def piece_bytes(piece: str | bytes) -> bytes:
    """One of :func:`manifest_pieces` as the bytes the file holds."""
    return piece if isinstance(piece, bytes) else piece.encode("utf-8")


def manifest_pieces(data: dict[str, Any]) -> Iterator[str | bytes]:
    """The text of the manifest ``data``, in order: the lines rendered ahead as their own
    ``bytes`` piece, the rest as strings."""

    def encode(value: object) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    keys = sorted(data)
    yield "{\n"
    for index, key in enumerate(keys):
        comma = "," if index < len(keys) - 1 else ""
        value = data[key]
        if isinstance(value, _Rendered):
            yield f"  {encode(key)}: [\n"
            yield value.lines
            yield f"  ]{comma}\n"
        elif isinstance(value, list) and value:
            yield f"  {encode(key)}: [\n"
            yield from _list_lines(value)
            yield f"  ]{comma}\n"
        else:
            yield f"  {encode(key)}: {encode(value)}{comma}\n"
    yield "}\n"


def _list_lines(items: list[Any]) -> Iterator[str]:
    """One line per item, handed out a slice at a time: one string per slice, not per line."""
    for start in range(0, len(items), _SLICE_ITEMS):
        texts = _items_json(items[start : start + _SLICE_ITEMS])
        end = "\n" if start + _SLICE_ITEMS >= len(items) else ",\n"
        yield "    " + ",\n    ".join(texts) + end


def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` exactly, through a temporary file."""
    _write_atomic(path, lambda handle: handle.write(data))


def _write_atomic(
    path: Path,
    write: Callable[[BinaryIO], object],
    before_replace: Callable[[], None] | None = None,
) -> None:
    try:
        fd, temp = create_partial(path.parent, f".{path.name}.", ".partial")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.chmod(temp, 0o644)
            if before_replace is not None:
                before_replace()
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    except OSError as exc:
        raise IOFailure(f"cannot write {path}: {exc.strerror or exc}") from exc


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest from disk; IOFailure when unreadable, IntegrityError when malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IOFailure(
            f"no manifest at {path}; pass --manifest with the manifest written by aether pack"
        ) from exc
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise IntegrityError(f"{path} is nested too deeply to be a manifest") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntegrityError(f"{path} is not an aether manifest (format {FORMAT})")
    return data

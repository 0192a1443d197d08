"""The dependency layer: reuse an app's extracted ``node_modules`` across code-only redeploys.

A code-only redeploy ships the same ``node_modules`` again, and extracting tens of thousands
of files dominates a rollout. So one streaming pass over the (already verified) archive hashes
everything under ``node_modules/`` — names, types, modes, link targets and contents — and
copies every other entry into a small tar. When ``<app>/layers/<hash>/node_modules`` exists,
only that small tar is extracted (with the same safe extractor) and the release's
``node_modules`` becomes a symlink to the layer; otherwise the full archive is extracted and its
``node_modules`` moved into a new layer. Node resolves packages through the symlink's real path,
which is itself a ``node_modules`` folder, so nested requires behave as before.

A layer is used only when every link under ``node_modules`` stays inside it, so moving it out of
the release cannot change what a link points to. The scan streams each entry's data (memory
stays flat whatever the archive holds) under the same expansion limits as the extractor, and
anything it does not understand means "no layer": the extractor then judges the archive.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aether.settings import ExpansionLimits

LAYER_ROOT = "node_modules"
_COMPLETE = ".complete"
_COPY_CHUNK = 4 * 1024 * 1024
_MAX_PAX_BYTES = 1 << 20  # the extractor's bound on metadata records (reader.MAX_METADATA_BYTES)


@dataclass(frozen=True)
class Split:
    layer: str | None  # hash of the node_modules entries; None: no layer to share
    rest: Path  # a tar holding every entry outside node_modules
    entries: int


def _normal(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


def _in_layer(name: str) -> bool:
    return name == LAYER_ROOT or name.startswith(LAYER_ROOT + "/")


def split_archive(archive: Path, rest: Path, limits: ExpansionLimits | None = None) -> Split:
    """Hash the archive's node_modules entries and copy the other entries' raw tar records to
    ``rest`` (a valid tar). Anything this scanner does not handle (GNU long names, global pax
    headers, base-256 sizes, a damaged stream) gives no layer, and the caller extracts the whole
    archive; a bomb is refused here already (ArchiveBomb)."""
    from aether.pack.reader import STREAM_ERRORS, open_tar_stream

    scan = _Scan()
    with (
        open_tar_stream(archive, limits=limits or ExpansionLimits()) as stream,
        rest.open("wb") as out,
    ):
        try:
            scan.run(_Reader(stream), out)
        except (_Unsupported, *STREAM_ERRORS):
            scan.shareable = False
        out.write(b"\0" * 1024)
    layer = scan.hasher.hexdigest() if scan.seen and scan.shareable else None
    return Split(layer, rest, scan.entries)


class _Unsupported(Exception):
    """A tar construct the fast scanner does not interpret; no layer is used."""


class _Reader:
    def __init__(self, stream: object) -> None:
        self._stream = stream

    def exactly(self, size: int) -> bytes:
        """``size`` bytes (small: headers and pax records) in memory."""
        return b"".join(self.chunks(size))

    def chunks(self, size: int) -> Iterator[bytes]:
        """``size`` bytes, a bounded chunk at a time."""
        left = size
        while left > 0:
            chunk = self._stream.read(min(left, _COPY_CHUNK))  # type: ignore[attr-defined]
            if not chunk:
                raise _Unsupported("truncated archive")
            left -= len(chunk)
            yield chunk


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise _Unsupported("base-256 number")
    text = field.split(b"\0", 1)[0].strip()
    if not text.isdigit() or b"8" in text or b"9" in text:
        if not text:
            return 0
        raise _Unsupported("a number field is not octal")
    return int(text, 8)


def _pax_records(data: bytes) -> dict[str, str]:
    records, position = {}, 0
    while position < len(data) and data[position : position + 1] != b"\0":
        length_text, _, _ = data[position : position + 20].partition(b" ")
        try:
            length = int(length_text)
        except ValueError:
            raise _Unsupported("a damaged pax record") from None
        if length <= len(length_text):
            raise _Unsupported("a damaged pax record")
        record = data[position : position + length]
        key, _, value = record[len(length_text) + 1 : -1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class _Scan:
    """One pass over the tar records: hash node_modules records, copy the others."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.shareable = True
        self.seen = False
        self.entries = 0

    def run(self, reader: _Reader, out: BinaryIO) -> None:
        pending = b""  # a pax header record that belongs to the next entry
        overrides: dict[str, str] = {}
        while True:
            header = reader.exactly(512)
            if header == b"\0" * 512:
                return
            kind = header[156:157]
            size = _size(overrides.get("size"), header)
            padded = -(-size // 512) * 512
            if kind in (b"x", b"X"):
                if size > _MAX_PAX_BYTES:
                    raise _Unsupported("an oversized pax record")
                data = reader.exactly(padded)
                pending, overrides = header + data, _pax_records(data[:size])
                continue
            if kind in (b"g", b"L", b"K"):
                raise _Unsupported(f"tar record type {kind!r}")
            sink = self._entry(header, kind, overrides, out)
            sink(pending + header)
            for chunk in reader.chunks(padded):
                sink(chunk)
            pending, overrides = b"", {}

    def _entry(
        self, header: bytes, kind: bytes, overrides: dict[str, str], out: BinaryIO
    ) -> Callable[[bytes], object]:
        """Where this entry's raw record goes: the rest tar, or the layer's hash."""
        self.entries += 1
        name = overrides.get("path") or _ustar_name(header)
        name = _normal(name)
        if not _in_layer(name):
            return out.write
        self.seen = True
        link = overrides.get("linkpath") or header[157:257].split(b"\0", 1)[0].decode(
            "utf-8", "surrogateescape"
        )
        self.shareable = self.shareable and _kind_stays_inside(kind, name, link)
        return self.hasher.update


def _size(pax_size: str | None, header: bytes) -> int:
    if pax_size is None:
        return _octal(header[124:136])
    try:
        size = int(pax_size)
    except ValueError:
        raise _Unsupported("a damaged pax size") from None
    if size < 0:
        raise _Unsupported("a negative size")
    return size


def _ustar_name(header: bytes) -> str:
    name = header[0:100].split(b"\0", 1)[0]
    if header[257:262] == b"ustar":
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def _kind_stays_inside(kind: bytes, name: str, link: str) -> bool:
    if kind in (b"0", b"\0", b"5", b"7"):
        return True
    if kind != b"2":
        return False  # hard links, devices, FIFOs: never shared (the extractor refuses most)
    if link.startswith("/"):
        return False
    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    return _in_layer(target) and target != LAYER_ROOT


def layer_path(layers_dir: Path, layer: str) -> Path:
    return layers_dir / layer / LAYER_ROOT


def has_layer(layers_dir: Path, layer: str) -> bool:
    return (layers_dir / layer / _COMPLETE).is_file() and layer_path(layers_dir, layer).is_dir()


def adopt_layer(release: Path, layers_dir: Path, layer: str) -> None:
    """Move the freshly extracted ``release/node_modules`` into the layer, link it back."""
    target = layer_path(layers_dir, layer)
    if target.parent.exists():  # an unfinished earlier attempt
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    os.rename(release / LAYER_ROOT, target)
    (target.parent / _COMPLETE).touch()
    link_layer(release, layers_dir, layer)


def link_layer(release: Path, layers_dir: Path, layer: str) -> None:
    os.symlink(layer_path(layers_dir, layer), release / LAYER_ROOT, target_is_directory=True)


def release_layer(release: Path) -> str | None:
    """The layer a release folder uses (None: its node_modules is its own, or absent)."""
    link = release / LAYER_ROOT
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).parent.name


def unused_layers(layers_dir: Path, keep: set[str]) -> list[Path]:
    """Layer folders no kept release uses (deleted by the caller, off the rollout path)."""
    if not layers_dir.is_dir():
        return []
    return [entry for entry in layers_dir.iterdir() if entry.name not in keep]

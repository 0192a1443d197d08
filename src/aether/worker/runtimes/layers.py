"""The dependency layer of a format-1 archive: reuse extracted ``node_modules`` across releases.

A code-only redeploy ships the same ``node_modules`` again, and extracting tens of thousands
of files dominates a rollout. So one streaming pass over the (already verified) archive hashes
everything under ``node_modules/`` — names, types, modes, link targets and contents — and
copies every other entry into a small tar. When the host's layer cache
(:mod:`aether.worker.runtimes.layer_cache`) holds that hash, only the small tar is extracted
(with the same safe extractor) and the release's ``node_modules`` becomes a symlink to the
layer; otherwise the full archive is extracted and its ``node_modules`` moved into the cache.
Node resolves packages through the symlink's real path, which is itself a ``node_modules``
folder, so nested requires behave as before. (Releases made before the cache was host-wide
link into ``<app>/layers/``; those layers go once no release of the app uses them.)

A layer is used only when every link under ``node_modules`` stays inside it, so moving it out of
the release cannot change what a link points to. The scan streams each entry's data (memory
stays flat whatever the archive holds) under the same expansion limits as the extractor, and
anything it does not understand means "no layer": the extractor then judges the archive.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aether.pack import tarcodec
from aether.settings import ExpansionLimits

LAYER_ROOT = "node_modules"


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
    ``rest`` (a valid tar). Anything the tar codec does not read (GNU long names, global pax
    headers, base-256 sizes, a damaged stream) gives no layer, and the caller extracts the whole
    archive; a bomb is refused here already (ArchiveBomb)."""
    from aether.pack.reader import STREAM_ERRORS, open_tar_stream

    scan = _Scan()
    with (
        open_tar_stream(archive, limits=limits or ExpansionLimits()) as stream,
        rest.open("wb") as out,
    ):
        try:
            scan.run(stream, out)
        except (tarcodec.UnreadableHeader, *STREAM_ERRORS):
            scan.shareable = False
        out.write(b"\0" * 1024)
    layer = scan.hasher.hexdigest() if scan.seen and scan.shareable else None
    return Split(layer, rest, scan.entries)


class _Scan:
    """One pass over the tar records: hash node_modules records, copy the others."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.shareable = True
        self.seen = False
        self.entries = 0

    def run(self, stream: tarcodec.Source, out: BinaryIO) -> None:
        for member in tarcodec.read_headers(stream):
            self.entries += 1
            name = _normal(member.name)
            if _in_layer(name):
                self.seen = True
                inside = _kind_stays_inside(member.typeflag, name, member.linkname)
                self.shareable = self.shareable and inside
            sink = self.hasher.update if _in_layer(name) else out.write
            sink(member.raw)
            for chunk in tarcodec.read_chunks(stream, tarcodec.data_blocks(member.size)):
                sink(chunk)


def _kind_stays_inside(kind: bytes, name: str, link: str) -> bool:
    if kind in (b"0", b"\0", b"5", b"7"):
        return True
    if kind != b"2":
        return False  # hard links, devices, FIFOs: never shared (the extractor refuses most)
    if link.startswith("/"):
        return False
    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    return _in_layer(target) and target != LAYER_ROOT


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

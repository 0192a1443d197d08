"""Write a staged tree as the layers of a format-2 artifact: ``deps`` and ``app``.

``deps`` is the top-level ``node_modules`` (the production install) and the project's
lockfiles, ``app`` every other member; each is a deterministic archive written the way a single-file artifact is (same walk,
tar codec and compressor), so extracting both into one folder gives the tree. Beside each
layer ``L`` in ``<out>/layers/`` lies its file index ``L.manifest.json`` (format
``aether-manifest/1``: path, size, mode and blake3 of every file).

The deps layer of a staged build is cached under ``<cache>/layers/<key>/``, keyed by the
dependency set's own key (lockfile bytes, package manager and flags, target platform, Node.js
major), the compression, ``SOURCE_DATE_EPOCH`` and the ignore rules, and kept only while a
fingerprint of the installed tree (``treestamp``: every entry's path, inode, mode, size, mtime
and ctime) is unchanged: a hand-edited install is noticed and packed again. A code-only redeploy therefore reads and
compresses the app's files alone.

The lockfiles go with ``node_modules``: npm's records the app's own version, so it changes with
every version bump, and in the app layer it would make a code-only redeploy store it again
(for a small app, most of the stored bytes). The deps layer changes with it anyway (its key
holds the lockfile's bytes, and ``node_modules/.package-lock.json`` the version), so no
dependency ships stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from aether.errors import IOFailure
from aether.pack.archive import archive_file
from aether.pack.artifact_manifest import APP, DEPS, MEDIA_TYPES, LayerRef
from aether.pack.compress import SUFFIXES
from aether.pack.index_ahead import HEX_DIGEST, IndexAhead
from aether.pack.layout import manifest_path
from aether.pack.manifest import build_manifest
from aether.pack.packer import TreeContents
from aether.pack.partition import plan_entries
from aether.pack.project import LOCKFILES
from aether.pack.treestamp import fingerprint
from aether.pack.walk import FILE, Entry, Walker

Progress = Callable[[str, int, int | None], None]
LAYERS_DIR = "layers"
DEPS_ROOT = "node_modules"
# Top-level files the deps layer carries beside node_modules (format 2 since this rule).
DEPS_FILES = frozenset(name for name, _ in LOCKFILES)
# Bump when what a cached deps layer holds changes (3: its index and reference no longer
# record tar_sha256, so a layer cached before would give another artifact manifest).
CACHE_FORMAT = 3
KEEP_CACHED = 4  # cached deps layers kept besides the one just used
_FACTS = "facts.json"


class WrittenLayer(NamedTuple):
    ref: LayerRef
    path: Path  # <out>/layers/<digest><suffix>
    reused: bool  # taken from the local layer cache, not packed
    contents: TreeContents | None  # the members' records (None when reused)


class DepsCacheKey(NamedTuple):
    """Where a deps layer may be cached, and the fingerprint it must still match."""

    folder: Path
    installed: Path  # the node_modules folder the layer is made of


def layer_file(out: Path, digest: str, compression: str) -> Path:
    return out / LAYERS_DIR / f"{digest}{SUFFIXES[compression]}"


def write_layers(
    walker: Walker,
    out: Path,
    compression: str,
    epoch: int,
    progress: Progress,
    deps_cache: DepsCacheKey | None,
    *,
    split_deps: bool = True,
    top: list[Entry] | None = None,
) -> list[WrittenLayer]:
    """The artifact's layers (deps first, when the tree has a top-level node_modules and
    ``split_deps``, with the lockfiles; otherwise the app layer holds everything).

    ``top``: the root's entries when the caller has listed them already."""
    top = walker.children(None) if top is None else top
    split = split_deps and any(entry.path == DEPS_ROOT for entry in top)
    deps_top = [entry for entry in top if split and _in_deps(entry)]
    app_top = [entry for entry in top if entry not in deps_top]
    folder = out / LAYERS_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot write to {folder}: {exc.strerror or exc}") from exc
    layers = []
    if deps_top:
        # Taken before packing: a file changed while it is packed fails the next check.
        stamp = fingerprint(deps_cache.installed) if deps_cache else None
        cached = _cached_deps(deps_cache, stamp, out, compression) if deps_cache else None
        if cached is None:
            cached = _write_layer(DEPS, walker, deps_top, out, compression, epoch, progress)
            if deps_cache is not None and stamp is not None:
                _remember_deps(deps_cache, stamp, cached)
        layers.append(cached)
    layers.append(_write_layer(APP, walker, app_top, out, compression, epoch, progress))
    _prune(folder, {layer.path.name for layer in layers})
    return layers


def _in_deps(entry: Entry) -> bool:
    return entry.path == DEPS_ROOT or (entry.kind == FILE and entry.path in DEPS_FILES)


def _write_layer(
    name: str,
    walker: Walker,
    top: list,  # type: ignore[type-arg]
    out: Path,
    compression: str,
    epoch: int,
    progress: Progress,
) -> WrittenLayer:
    progress("pack", 0, None)
    folder = out / LAYERS_DIR

    def draft(contents: TreeContents) -> dict[str, Any]:
        """The layer's index before its digest is known (placeholders of the same length)."""
        return build_manifest(
            contents,
            artifact_name=f"{HEX_DIGEST}{SUFFIXES[compression]}",
            compression=compression,
            digest=HEX_DIGEST,
            tar_sha256=None,
            size_bytes=0,
            source_date_epoch=epoch,
        )

    with (
        IndexAhead(folder, name) as index_ahead,
        archive_file(
            plan_entries(walker, top),
            walker,
            folder,
            name,
            compression,
            epoch,
            what=f"the {name} layer",
            on_progress=lambda done, total: progress("pack", done, total),
            while_closing=lambda contents: index_ahead.write_lines(draft(contents)),
            hash_tar=False,  # a layer records no tar_sha256 (artifact_manifest.TAR_SHA256)
        ) as written,
    ):
        path = layer_file(out, written.digest, compression)
        index = manifest_path(path)
        index_sha256 = index_ahead.finish(index, written.manifest(path.name))
        try:
            os.replace(written.temp, path)
        except OSError as exc:
            raise IOFailure(f"cannot write the {name} layer: {exc.strerror or exc}") from exc
    ref = LayerRef(
        name=name,
        digest=written.digest,
        size=written.size,
        media_type=MEDIA_TYPES[compression],
        index_sha256=index_sha256,
        files=len(written.contents.files),
        bytes=written.contents.bytes_in,
    )
    return WrittenLayer(ref, path, reused=False, contents=written.contents)


# --- the local deps layer cache ------------------------------------------------------------


def deps_cache_key(
    cache: Path, deps_key: str, installed: Path, compression: str, epoch: int, extra: str
) -> DepsCacheKey:
    """The cache folder for a deps layer; ``extra`` holds what else shapes it (ignore rules,
    the native check)."""
    text = json.dumps([CACHE_FORMAT, deps_key, compression, epoch, extra])
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    return DepsCacheKey(cache / "layers" / key, installed)


def _cached_deps(
    key: DepsCacheKey, stamp: str | None, out: Path, compression: str
) -> WrittenLayer | None:
    try:
        facts = json.loads((key.folder / _FACTS).read_text(encoding="utf-8"))
        ref = LayerRef(**facts["layer"])
        if facts["fingerprint"] != stamp:
            return None
        source = key.folder / f"layer{SUFFIXES[compression]}"
        if source.stat().st_size != ref.size:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    target = layer_file(out, ref.digest, compression)
    try:
        _place(source, target)
        _place(manifest_path(source), manifest_path(target))
        os.utime(key.folder / _FACTS)  # recently used: kept by the pruning
    except OSError:
        return None
    return WrittenLayer(ref, target, reused=True, contents=None)


def _place(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy across file systems)."""
    if target.exists() and os.path.samefile(source, target):
        return
    temp = target.with_name(f".{target.name}.link")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    os.replace(temp, target)


def _remember_deps(key: DepsCacheKey, stamp: str, layer: WrittenLayer) -> None:
    """Keep a fresh deps layer for the next pack, with the installed tree's ``stamp`` taken
    before it was packed; a cache that cannot be written is no error."""
    suffix = layer.path.name[len(layer.ref.digest) :]
    staging = key.folder.with_name(key.folder.name + ".partial")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _place(layer.path, staging / f"layer{suffix}")
        _place(manifest_path(layer.path), manifest_path(staging / f"layer{suffix}"))
        facts = {"layer": layer.ref.as_json(), "fingerprint": stamp}
        (staging / _FACTS).write_text(json.dumps(facts, sort_keys=True), encoding="utf-8")
        shutil.rmtree(key.folder, ignore_errors=True)
        os.replace(staging, key.folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return
    _prune_cache(key.folder)


def _prune_cache(kept: Path) -> None:
    """Keep the ``KEEP_CACHED`` most recently used deps layers besides ``kept``."""

    def used(folder: Path) -> float:
        try:
            return (folder / _FACTS).stat().st_mtime
        except OSError:
            return 0.0

    others = [entry for entry in kept.parent.iterdir() if entry != kept and entry.is_dir()]
    for folder in sorted(others, key=used, reverse=True)[KEEP_CACHED:]:
        shutil.rmtree(folder, ignore_errors=True)


def _prune(folder: Path, keep: set[str]) -> None:
    """Remove layers (and their indexes) of earlier packs from the output folder."""
    for entry in folder.iterdir():
        name = entry.name.removesuffix(".manifest.json")
        if name not in keep and not entry.name.startswith("."):
            with contextlib.suppress(OSError):
                entry.unlink()

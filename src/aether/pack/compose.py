"""A layered artifact's verified layer files → one app folder.

The app layer is extracted into the destination; the deps layer either into the destination
too (``extract_layers``: a self-contained folder, as ``aether fetch`` and ``--check`` need) or
once into a folder of its own that releases link to (``extract_deps_layer``, the worker's
layer cache). Each goes through :func:`~aether.pack.extract.safe_extract` with its limits; the
layers' digests are the caller's to check first.

A deps layer holds ``node_modules`` and, since the lockfiles moved there, the project's
lockfiles; an older one holds ``node_modules`` alone and its app layer the lockfiles. Either
composes to the same folder: the lockfiles at the app's root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from aether.errors import IOFailure
from aether.pack.artifact_manifest import APP, DEPS, ArtifactManifest
from aether.pack.extract import UnsafeArchive, safe_extract
from aether.pack.layered import DEPS_FILES, DEPS_ROOT
from aether.settings import ExpansionLimits


def extract_layers(
    manifest: ArtifactManifest,
    files: Mapping[str, Path],
    dest: Path,
    *,
    limits: ExpansionLimits | None = None,
) -> int:
    """Extract every layer (``files``: layer name → its verified file) into ``dest``."""
    entries = safe_extract(files[APP], dest, limits=limits)
    if manifest.layer(DEPS) is None:
        return entries
    try:
        holder = Path(tempfile.mkdtemp(prefix=f".{dest.name}.deps-", dir=dest.parent))
    except OSError as exc:
        raise IOFailure(f"cannot create a folder beside {dest}: {exc.strerror or exc}") from exc
    try:
        entries += extract_deps_layer(files[DEPS], holder / "layer", limits=limits)
        place_deps(holder / "layer", dest)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    return entries


def extract_deps_layer(
    archive: Path, folder: Path, *, limits: ExpansionLimits | None = None
) -> int:
    """Extract a deps layer into ``folder``, which then holds ``node_modules`` and at most
    the lockfiles beside it (a layer with other members is refused)."""
    entries = safe_extract(archive, folder, limits=limits)
    extra = sorted(name for name in deps_extras(folder) if not _is_lockfile(folder / name))
    if extra:
        shutil.rmtree(folder, ignore_errors=True)
        raise UnsafeArchive(f"the deps layer holds {extra[0]} outside {DEPS_ROOT}/")
    return entries


def deps_extras(folder: Path) -> list[str]:
    """The names beside ``node_modules`` in an extracted deps layer (its lockfiles)."""
    return sorted(entry.name for entry in folder.iterdir() if entry.name != DEPS_ROOT)


def place_deps(layer_folder: Path, dest: Path) -> None:
    """Move an extracted deps layer's node_modules and lockfiles into the app folder ``dest``."""
    for name in [DEPS_ROOT, *deps_extras(layer_folder)]:
        target = dest / name
        if os.path.lexists(target):
            raise UnsafeArchive(f"the app layer holds {name}, which the deps layer provides")
        try:
            os.rename(layer_folder / name, target)
        except OSError as exc:
            raise IOFailure(f"cannot move {name} into {dest}: {exc.strerror or exc}") from exc


def _is_lockfile(path: Path) -> bool:
    return path.name in DEPS_FILES and path.is_file() and not path.is_symlink()

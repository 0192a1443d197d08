"""A layered artifact's release folder: manifest, then each layer verified and composed.

The manifest's sha256 must be the deployment's digest (and its signature verify, when
required) before any layer is fetched; each layer's sha256 must match the manifest before it
is extracted. The deps layer is extracted once per digest into the host's layer cache
(:mod:`aether.worker.runtimes.layer_cache`, shared by every app and worker of the host) and
every release that uses it links ``node_modules`` to it, read-only in the sandbox, instead of
copying it: a code-only redeploy, or another app with the same dependencies, fetches and
extracts the small app layer alone. The lockfiles a deps layer carries are copied to the
release's root; an older artifact carries them in its app layer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aether.digests import sha256_file
from aether.errors import AetherError
from aether.pack.artifact_manifest import APP, DEPS, parse_artifact_manifest
from aether.settings import ExpansionLimits
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.base import EventSink, LayerSource, Release
from aether.worker.runtimes.download import download
from aether.worker.runtimes.layer_cache import LayerCache

if TYPE_CHECKING:
    from aether.blobs import BlobStore


async def prepare_layered(
    release: Release,
    folder: Path,
    app_dir: Path,
    cache: LayerCache,
    blobs: BlobStore,
    record: EventSink,
    *,
    signature: Callable[[], str],
    limits: ExpansionLimits,
) -> str:
    """Fetch, verify and compose the release into ``folder``; what was done, for the event."""
    scratch = app_dir / f".{release.deployment_id}.layers"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        await record("fetching", f"artifact manifest {release.digest[:12]}")
        manifest_file = scratch / "artifact.json"
        await download(blobs, release.storage_key, manifest_file)
        raw = manifest_file.read_bytes()
        if await asyncio.to_thread(sha256_file, manifest_file) != release.digest:
            raise Fatal("digest mismatch: the stored manifest is not the deployment's artifact")
        try:
            manifest = parse_artifact_manifest(raw)
        except AetherError as exc:
            raise Fatal(f"the artifact manifest cannot be read: {exc.message}") from exc
        await record("verifying", f"manifest sha256 ok; {signature()}")
        sources = {layer.digest: layer for layer in release.layers}
        app = manifest.layer(APP)
        assert app is not None  # the parser requires it
        archive = await _fetch(blobs, sources, app.name, app.digest, scratch, record)
        await record("extracting", f"the app layer into {folder}")
        entries = await asyncio.to_thread(_extract_app, archive, folder, limits)
        deps = manifest.layer(DEPS)
        if deps is None:
            return f"{entries} entries (no deps layer)"

        digest = deps.digest

        async def make(work: Path) -> None:
            layer = await _fetch(blobs, sources, DEPS, digest, scratch, record)
            await asyncio.to_thread(_extract_deps, layer, work, limits)

        how = await cache.attach(digest, folder, make)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return f"{entries} app entries; node_modules {how} (layer {deps.digest[:12]})"


async def _fetch(
    blobs: BlobStore,
    sources: dict[str, LayerSource],
    name: str,
    digest: str,
    scratch: Path,
    record: EventSink,
) -> Path:
    source = sources.get(digest)
    if source is None or source.storage_key is None:
        raise Fatal(f"the {name} layer {digest[:12]} is no longer stored; deploy again")
    await record("fetching", f"{name} layer {digest[:12]}")
    path = scratch / f"{name}.layer"
    await download(blobs, source.storage_key, path)
    actual = await asyncio.to_thread(sha256_file, path)
    if actual != digest:
        raise Fatal(
            f"digest mismatch: the stored {name} layer hashes to {actual}, the manifest names "
            f"{digest}; nothing was extracted"
        )
    return path


def _extract_deps(archive: Path, work: Path, limits: ExpansionLimits) -> None:
    from aether.pack.compose import extract_deps_layer

    try:
        extract_deps_layer(archive, work, limits=limits)
    except AetherError as exc:
        raise Fatal(f"the deps layer cannot be extracted safely: {exc.message}") from exc
    except OSError as exc:
        raise Fatal(f"extracting the deps layer failed, nothing was kept: {exc}") from exc


def _extract_app(archive: Path, folder: Path, limits: ExpansionLimits) -> int:
    from aether.pack.extract import safe_extract
    from aether.pack.layered import DEPS_ROOT

    if folder.exists():  # a half-finished earlier attempt (no marker): start clean
        shutil.rmtree(folder)
    try:
        entries = safe_extract(archive, folder, limits=limits)
    except AetherError as exc:
        raise Fatal(f"the app layer cannot be extracted safely: {exc.message}") from exc
    if (folder / DEPS_ROOT).exists() or (folder / DEPS_ROOT).is_symlink():
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
        raise Fatal("the app layer holds node_modules, which belongs to the deps layer")
    return entries

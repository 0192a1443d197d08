"""A release folder on local disk: download through the blob store, verify, then extract.

Nothing is extracted before the sha256 of the downloaded bytes matches the deployment's digest
(and, when signatures are required, an active public key of the app verifies the signature).
The folder ``<data_dir>/apps/<app>/<deployment_id>/`` gets ``.aether/deployment.json`` once
complete, so a restarted worker reuses it instead of fetching again. An unchanged
``node_modules`` is shared with earlier releases, of this app or any other on the host,
through the host's layer cache (:mod:`aether.worker.runtimes.layers` finds it in a format-1
archive, :mod:`aether.worker.runtimes.layer_cache` keeps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from aether.errors import AetherError, IOFailure
from aether.settings import ExpansionLimits
from aether.worker.outcomes import Fatal, Retry
from aether.worker.runtimes.base import EventSink, Release
from aether.worker.runtimes.download import download as fetch_object
from aether.worker.runtimes.layer_cache import MISSING, LayerCache
from aether.worker.runtimes.layered import prepare_layered
from aether.worker.runtimes.layers import LAYER_ROOT, split_archive

if TYPE_CHECKING:
    from aether.blobs import BlobStore

MARKER = Path(".aether") / "deployment.json"


def release_dir(apps_dir: Path, release: Release) -> Path:
    return apps_dir / release.app_name / release.deployment_id


def is_complete(folder: Path, digest: str) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("digest") == digest


def write_marker(folder: Path, *, digest: str, deployment_id: str, app_name: str) -> None:
    """``.aether/deployment.json``, written atomically (temp file + rename)."""
    marker = folder / MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    body = {"digest": digest, "deployment_id": deployment_id, "app_name": app_name}
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, marker)


def check_signature(release: Release, *, required: bool) -> str:
    """Verify the release's signature against the app's active keys; what was checked."""
    from aether.pack.signing import verify_signature

    if not release.signature or not release.public_keys:
        if required:
            missing = "signature" if not release.signature else "active public key for the app"
            raise Fatal(f"AETHER_REQUIRE_SIGNATURE is on but the release has no {missing}")
        return "unsigned"
    for key in release.public_keys:
        if verify_signature(key, release.digest, release.signature):
            return f"signature ok (key {key[:12]}…)"
    raise Fatal("the artifact signature does not verify against any active public key")


async def prepare(
    release: Release,
    apps_dir: Path,
    blobs: BlobStore | None,
    record: EventSink,
    *,
    require_signature: bool,
    limits: ExpansionLimits | None = None,
    cache: LayerCache | None = None,
) -> Path:
    """The extracted, verified release folder (fetched unless already complete); ``limits``
    bound the expansion (decompression bombs fail the deployment with the reason); ``cache``
    holds the host's dependency layers (default ``<apps_dir>/../layers``)."""
    folder = release_dir(apps_dir, release)
    cache = cache or LayerCache(apps_dir.parent / "layers")
    if is_complete(folder, release.digest):
        damage = await cache.damage_under(folder)
        if damage is None:
            return folder
        await record(
            "verifying", f"the cached deps layer failed its check ({damage}): composing again"
        )
        await asyncio.to_thread(shutil.rmtree, folder)
    if blobs is None:
        raise Retry("the blob store is not open yet", delay=1.0)
    if release.layers:
        done = await prepare_layered(
            release,
            folder,
            apps_dir / release.app_name,
            cache,
            blobs,
            record,
            signature=lambda: check_signature(release, required=require_signature),
            limits=limits or ExpansionLimits(),
        )
        write_marker(
            folder,
            digest=release.digest,
            deployment_id=release.deployment_id,
            app_name=release.app_name,
        )
        await record("extracted", done)
        return folder
    suffix = ".tar.gz" if release.compression == "gzip" else ".tar.zst"
    download = apps_dir / release.app_name / f".{release.deployment_id}{suffix}.part"
    download.parent.mkdir(parents=True, exist_ok=True)
    try:
        await record("fetching", f"artifact {release.digest[:12]} from {release.storage_key}")
        await fetch_object(blobs, release.storage_key, download)
        await record("verifying", await _verify(download, release, require_signature))
        await record("extracting", f"into {folder}")
        done = await _extract(download, folder, cache, limits or ExpansionLimits())
    finally:
        with contextlib.suppress(FileNotFoundError):
            download.unlink()
    write_marker(
        folder,
        digest=release.digest,
        deployment_id=release.deployment_id,
        app_name=release.app_name,
    )
    await record("extracted", done)
    return folder


async def _verify(download: Path, release: Release, require_signature: bool) -> str:
    from aether.digests import sha256_file

    actual = await asyncio.to_thread(sha256_file, download)
    if actual != release.digest:
        raise Fatal(
            f"digest mismatch: the stored artifact hashes to {actual}, "
            f"the deployment expects {release.digest}; nothing was extracted"
        )
    return f"sha256 ok; {check_signature(release, required=require_signature)}"


async def _extract(archive: Path, folder: Path, cache: LayerCache, limits: ExpansionLimits) -> str:
    """Extract the verified archive, reusing the host's dependency layer when it matches."""
    if folder.exists():  # a half-finished earlier attempt (no marker): start clean
        await asyncio.to_thread(shutil.rmtree, folder)
    rest = archive.with_name(archive.name + ".rest.tar")
    try:
        return await _extract_reusing(archive, rest, folder, cache, limits)
    except (Fatal, Retry):
        raise
    except IOFailure as exc:
        raise Fatal(f"extracting the artifact failed, nothing was kept: {exc.message}") from exc
    except AetherError as exc:
        raise Fatal(f"the artifact cannot be extracted safely: {exc.message}") from exc
    except OSError as exc:  # the scan's copy, or the layer's move (a full disk, …)
        shutil.rmtree(folder, ignore_errors=True)
        raise Fatal(f"extracting the artifact failed, nothing was kept: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            rest.unlink()


async def _extract_reusing(
    archive: Path, rest: Path, folder: Path, cache: LayerCache, limits: ExpansionLimits
) -> str:
    from aether.pack.extract import safe_extract

    split = await asyncio.to_thread(split_archive, archive, rest, limits)
    if split.layer and cache.has(split.layer):
        await asyncio.to_thread(safe_extract, rest, folder, limits=limits)
        if await cache.attach(split.layer, folder, None) != MISSING:
            return f"{split.entries} entries; node_modules reused (layer {split.layer[:12]})"
        await asyncio.to_thread(shutil.rmtree, folder)  # gone meanwhile: the whole archive
    await asyncio.to_thread(safe_extract, archive, folder, limits=limits)
    source = folder / LAYER_ROOT
    if not split.layer or not source.is_dir() or source.is_symlink():
        return f"{split.entries} entries"

    async def adopt(work: Path) -> None:
        os.rename(source, work / LAYER_ROOT)

    how = await cache.attach(split.layer, folder, adopt)
    return f"{split.entries} entries; node_modules {how} (layer {split.layer[:12]})"

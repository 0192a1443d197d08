"""A release folder on local disk: download through the blob store, verify, then extract.

Nothing is extracted before the sha256 of the downloaded bytes matches the deployment's digest
(and, when signatures are required, an active public key of the app verifies the signature).
The folder ``<data_dir>/apps/<app>/<deployment_id>/`` gets ``.aether/deployment.json`` once
complete, so a restarted worker reuses it instead of fetching again. An unchanged
``node_modules`` is shared with the previous release through the app's dependency layer
(:mod:`aether.worker.runtimes.layers`).
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
from aether.worker.runtimes.layered import prepare_layered
from aether.worker.runtimes.layers import (
    LAYER_ROOT,
    adopt_layer,
    has_layer,
    link_layer,
    split_archive,
)

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
) -> Path:
    """The extracted, verified release folder (fetched unless already complete); ``limits``
    bound the expansion (decompression bombs fail the deployment with the reason)."""
    folder = release_dir(apps_dir, release)
    if is_complete(folder, release.digest):
        return folder
    if blobs is None:
        raise Retry("the blob store is not open yet", delay=1.0)
    if release.layers:
        done = await prepare_layered(
            release,
            folder,
            apps_dir / release.app_name,
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
        layers_dir = apps_dir / release.app_name / "layers"
        limits = limits or ExpansionLimits()
        done = await asyncio.to_thread(_extract, download, folder, layers_dir, limits)
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


def _extract(archive: Path, folder: Path, layers_dir: Path, limits: ExpansionLimits) -> str:
    """Extract the verified archive, reusing the app's dependency layer when it matches."""
    from aether.pack.extract import safe_extract

    if folder.exists():  # a half-finished earlier attempt (no marker): start clean
        shutil.rmtree(folder)
    rest = archive.with_name(archive.name + ".rest.tar")
    try:
        split = split_archive(archive, rest, limits)
        if split.layer and has_layer(layers_dir, split.layer):
            safe_extract(rest, folder, limits=limits)
            link_layer(folder, layers_dir, split.layer)
            return f"{split.entries} entries; node_modules reused (layer {split.layer[:12]})"
        safe_extract(archive, folder, limits=limits)
        if split.layer and (folder / LAYER_ROOT).is_dir():
            adopt_layer(folder, layers_dir, split.layer)
        return f"{split.entries} entries"
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

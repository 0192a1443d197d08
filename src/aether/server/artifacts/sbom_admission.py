"""The SBOM check when a deployment is created: present, the manifest's, CycloneDX, allowed.

A layered artifact's manifest records its SBOM's sha256 (``sbom_sha256``) and the client
uploads the SBOM as an object of its own (stored once by digest, like a layer, and named by
the artifact in ``artifact_layers`` as ``sbom``). When an artifact names an uploaded SBOM, every
deployment of it reads that SBOM back: its sha256 must be the manifest's and it must be
CycloneDX JSON (:mod:`aether.pack.sbom_summary`), and no component may be on a deny list
(``AETHER_SBOM_DENY_PACKAGES``, ``AETHER_SBOM_DENY_LICENSES``). With ``AETHER_REQUIRE_SBOM``
an artifact without one is refused: a layered artifact packed with ``--no-sbom``, one whose
SBOM was never uploaded (an older client), and any single-archive (format 1) artifact, which
carries none. Without it such artifacts deploy as before, unchecked. The SBOM and manifest
are content-addressed, so what was checked for an artifact is remembered, and so is what
was read of an SBOM by its sha256, which a code-only redeploy's new artifact names again (the
policy is applied again each time).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from aether.blobs.storage_keys import MANIFEST_NAME
from aether.errors import AetherError, BadRequest, DigestMismatch, NotFound
from aether.pack.artifact_manifest import SBOM, parse_artifact_manifest
from aether.pack.sbom_summary import SbomSummary, denied, read_sbom
from aether.server.state import ServerState
from aether.store import artifact_layers as layer_store
from aether.store.database import Row

MAX_SBOM_BYTES = 32 * 1024 * 1024  # a CycloneDX document of ~100,000 components
_REMEMBERED = 256  # artifacts whose SBOM is kept read


async def check_sbom(state: ServerState, artifact: Row) -> None:
    """Refuse (400 ``bad_request`` or ``digest_mismatch``) to deploy ``artifact`` as the SBOM policy says."""
    policy = state.policy
    digest = artifact["digest"]
    if not str(artifact["storage_key"] or "").endswith("/" + MANIFEST_NAME):
        if policy.require_sbom:
            raise BadRequest(
                f"artifact {digest} is a single archive (format 1), which carries no SBOM, and"
                " AETHER_REQUIRE_SBOM is on; deploy a layered artifact (aether deploy without"
                " --single-file) and its SBOM"
            )
        return
    summary = await _summary(state, artifact)
    if summary is None:
        if policy.require_sbom:
            raise BadRequest(
                f"artifact {digest} has no uploaded SBOM and AETHER_REQUIRE_SBOM is on; deploy"
                " again without --no-sbom (aether deploy uploads the SBOM)"
            )
        return
    reason = denied(summary, policy.sbom_deny_packages, policy.sbom_deny_licenses)
    if reason:
        raise BadRequest(f"artifact {digest} may not be deployed: its SBOM's {reason}")


async def _summary(state: ServerState, artifact: Row) -> SbomSummary | None:
    """The artifact's SBOM read and checked, or None when it names or uploaded none."""
    digest = artifact["digest"]
    checked = state.sboms_checked
    if digest in checked:
        return checked[digest]
    manifest = parse_artifact_manifest(await _read(state, artifact["storage_key"], "manifest"))
    rows = await layer_store.layers_of(state.db, digest)
    stored = next((row for row in rows if row["name"] == SBOM), None)
    summary = None
    if manifest.sbom_sha256 is not None and stored is not None and stored["storage_key"]:
        summary = await _read_summary(state, digest, manifest.sbom_sha256, stored)
    _remember(checked, digest, summary)
    return summary


async def _read_summary(
    state: ServerState, digest: str, sbom_sha256: str, stored: Row
) -> SbomSummary:
    """The SBOM the manifest names, read back and summarised; one already read by that
    sha256 is not read again when the stored object is the one named (proven on upload)."""
    checked, key = state.sboms_checked, f"sbom:{sbom_sha256}"
    if stored["digest"] == sbom_sha256 and key in checked:
        return checked[key]
    if int(stored["size_bytes"]) > MAX_SBOM_BYTES:
        raise BadRequest(f"the SBOM of artifact {digest} is over {MAX_SBOM_BYTES} bytes")
    raw = await _read(state, stored["storage_key"], "SBOM")
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sbom_sha256:
        raise DigestMismatch(
            f"the SBOM stored for artifact {digest} hashes to {actual}, its manifest names"
            f" {sbom_sha256}"
        )
    try:
        summary = read_sbom(raw)
    except AetherError as exc:
        raise BadRequest(f"the SBOM of artifact {digest} is refused: {exc.message}") from exc
    _remember(checked, key, summary)
    return summary


def _remember(checked: dict[str, Any], key: str, summary: SbomSummary | None) -> None:
    if len(checked) >= _REMEMBERED:
        checked.pop(next(iter(checked)))  # the oldest
    checked[key] = summary


async def _read(state: ServerState, key: str, what: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="aether-sbom-") as folder:
        path = Path(folder) / "object"
        try:
            await state.blobs.download(key, path)
        except NotFound as exc:
            raise BadRequest(f"the artifact's {what} is no longer stored: {exc.message}") from exc
        return path.read_bytes()

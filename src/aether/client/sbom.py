"""An app's SBOM as the control plane stores it: the CycloneDX document of one release.

The release (its number, else the newest) names the artifact; ``GET
/artifacts/{digest}/sbom`` gives a short-lived URL of the SBOM its manifest names, which is
downloaded and read back (:mod:`aether.pack.sbom_summary`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from aether.client.api import ApiClient
from aether.client.fetch import download_sbom
from aether.errors import NotFound


def release_sbom(api: ApiClient, app: str, release: str | None) -> dict[str, Any]:
    """``{app, release, artifact_digest, sbom_sha256, document}`` of ``release`` (``v3``;
    None: the newest); NotFound when the app has no release or the artifact no SBOM."""
    if release is None:
        found = api.get(f"/apps/{app}/releases", limit=1).get("releases") or []
        if not found:
            raise NotFound(f"app {app!r} has no release yet: `aether deploy`")
        chosen = found[0]
    else:
        chosen = api.get(f"/apps/{app}/releases/{release}")
    digest = chosen["artifact_digest"]
    with tempfile.TemporaryDirectory(prefix="aether-sbom-") as folder:
        path = Path(folder) / "sbom.cdx.json"
        _, sha256 = download_sbom(api, digest, path)
        raw = path.read_bytes()
    from aether.pack.sbom_summary import read_sbom

    read_sbom(raw)  # IntegrityError (exit 20) when it is not CycloneDX JSON
    return {
        "app": app,
        "release": f"v{chosen['version']}",
        "artifact_digest": digest,
        "sbom_sha256": sha256,
        "document": json.loads(raw),
    }

"""Shipping a layered artifact: each layer the server lacks, its SBOM, then the manifest.

Per layer, ``HEAD /artifacts/{digest}`` (unless the deploy just asked it, or the layer came
from the local layer cache: a cached deps layer was shipped with the deploy that packed it, so
it is taken as held and the registration says otherwise with a 409); only a missing layer is
uploaded (presigned, or multipart when big, as any artifact). The SBOM the manifest names
(``sbom_sha256``) goes the same way, as an object stored as it is (``compression: none``): an
SBOM made from unchanged inputs has the same bytes, so it is uploaded once while the
dependencies stay the same. Then
``POST /artifacts/manifests`` registers the artifact. A layer that the server's garbage
collection removed between the ``HEAD`` and the registration is answered 409: its layers are
checked and uploaded again, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aether.client.api import ApiClient
from aether.client.transfer import ProgressCallback, UploadRequest
from aether.client.upload import upload_artifact
from aether.errors import RemoteError

_ATTEMPTS = 2


def upload_layered(
    api: ApiClient,
    packed: Any,
    app: str,
    config: dict[str, Any],
    resume_root: Path,
    on_progress: ProgressCallback | None,
    *,
    concurrency: int = 4,
    answers: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """Upload the missing layers and register the manifest; the deploy result's fields.
    ``answers``: whether the server holds a digest, for those it was just asked about (not
    asked again; a retry after a 409 asks again)."""
    reports: dict[str, dict[str, Any]] = {}
    for attempt in range(_ATTEMPTS):
        for layer in [*packed.layers, *_sbom_object(packed)]:
            known = _presumed(packed, answers) if attempt == 0 else {}
            report = _ship_layer(
                api, layer, app, config, resume_root, on_progress, concurrency, known
            )
            if layer["digest"] not in reports or report["uploaded"]:
                reports[layer["digest"]] = report
        try:
            registered = register_manifest(api, packed, app)
            break
        except RemoteError as exc:
            if exc.http_status != 409 or attempt == _ATTEMPTS - 1:
                raise
    layers = [reports[layer["digest"]] for layer in packed.layers]
    sbom = [reports[item["digest"]] for item in _sbom_object(packed)]
    uploaded = sum(item["uploaded_bytes"] for item in [*layers, *sbom])
    return {
        "uploaded_bytes": uploaded + registered["manifest_bytes"],
        "skipped_upload": not any(item["uploaded"] for item in [*layers, *sbom]),
        "layers": layers,
        "sbom_upload": {key: sbom[0][key] for key in _SBOM_FIELDS} if sbom else None,
    }


_SBOM_FIELDS = ("digest", "size_bytes", "uploaded", "uploaded_bytes")


def _presumed(packed: Any, answers: Mapping[str, bool] | None) -> dict[str, bool]:
    """What the first attempt takes as known: the answers the deploy already has, and every
    layer reused from the local layer cache as held (a code-only redeploy's deps layer). The
    SBOM is always asked: a manifest registers without it."""
    reused = {layer["digest"]: True for layer in packed.layers if layer.get("reused")}
    return {**reused, **(answers or {})}


def _sbom_object(packed: Any) -> list[dict[str, Any]]:
    """The SBOM as an object to ship (none without one)."""
    if packed.sbom is None:
        return []
    from aether.digests import sha256_file

    path = Path(packed.sbom)
    return [
        {
            "name": "sbom",
            "digest": sha256_file(path),
            "size": path.stat().st_size,
            "files": 1,
            "path": str(path),
            "compression": "none",
        }
    ]


def _ship_layer(
    api: ApiClient,
    layer: dict[str, Any],
    app: str,
    config: dict[str, Any],
    resume_root: Path,
    on_progress: ProgressCallback | None,
    concurrency: int,
    known: Mapping[str, bool],
) -> dict[str, Any]:
    digest = layer["digest"]
    fields = {
        "name": layer["name"],
        "digest": digest,
        "size_bytes": layer["size"],
        "files": layer["files"],
    }
    held = known.get(digest)
    if held is None:
        held = api.exists(f"/artifacts/{digest}?app={app}")  # held for this app (possession)
    if held:
        return {**fields, "uploaded": False, "uploaded_bytes": 0}
    if on_progress is not None:
        on_progress("upload", 0, layer["size"])
    result = upload_artifact(
        api,
        UploadRequest(
            artifact=Path(layer["path"]),
            app_name=app,
            digest=digest,
            size_bytes=layer["size"],
            compression=layer.get("compression") or _compression(layer["media_type"]),
        ),
        config=config,
        resume_root=resume_root,
        on_progress=on_progress,
        concurrency=concurrency,
    )
    return {
        **fields,
        "uploaded": not result.skipped,
        "uploaded_bytes": result.uploaded_bytes,
        "multipart": result.multipart,
    }


def _compression(media_type: str) -> str:
    return "gzip" if media_type.endswith("+gzip") else "zstd"


def register_manifest(api: ApiClient, packed: Any, app: str) -> dict[str, Any]:
    """``POST /artifacts/manifests`` with the manifest's exact bytes (and the signature)."""
    raw = Path(packed.artifact).read_bytes()
    body: dict[str, Any] = {"app_name": app, "manifest": raw.decode("utf-8")}
    if packed.signature_hex:
        body["signature"] = packed.signature_hex
    answer = api.post("/artifacts/manifests", body)
    return {**answer, "manifest_bytes": 0 if answer.get("duplicate") else len(raw)}

"""Shipping a layered artifact: each layer the server lacks, its SBOM, then the manifest.

Per layer, ``HEAD /artifacts/{digest}`` (unless the deploy just asked it, or began its upload,
or the layer came from the local layer cache: a cached deps layer was shipped with the
deploy that packed it, so it is taken as held and the registration says otherwise with a 409);
only a missing layer is uploaded (directly when small, else presigned, or multipart when big,
as any artifact). The SBOM the manifest names (``sbom_sha256``) goes the same way, as an
object stored as it is (``compression: none``): an SBOM made from unchanged inputs has the
same bytes, so it is uploaded once while the dependencies stay the same. Then ``POST
/artifacts/manifests`` registers the artifact, or the deploy leaves that to ``POST
/deployments``, which carries the manifest (``register=False``). A layer that the server's
garbage collection removed between the ``HEAD`` and the registration is answered 409: its
layers are checked and uploaded again, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from aether.client.api import ApiClient
from aether.client.transfer import ProgressCallback, UploadRequest
from aether.client.upload import Opened, upload_artifact
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
    opened: Mapping[str, Opened] | None = None,
    presume: bool = True,
    register: bool = True,
    earlier: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Upload the missing layers and register the manifest; the deploy result's fields.
    ``answers``: whether the server holds a digest, for those it was just asked about (not
    asked again; a retry after a 409 asks again); ``opened``: the uploads the deploy has
    begun, by digest (:func:`aether.client.upload.open_upload`; used once); ``presume``:
    take the layers from the local layer cache as held (:func:`_presumed`); without
    ``register`` the manifest is left to ``POST /deployments`` (:func:`manifest_fields`), and
    counted as uploaded; ``earlier``: this call's result for the same deploy before, whose
    uploads still count."""
    reports = _reports_of(earlier)
    offers = dict(opened or {})
    ship = _Shipping(app, config, resume_root, on_progress, concurrency)
    sbom_object = _sbom_object(packed)
    for attempt in range(_ATTEMPTS):
        sbom_checked = [] if register else sbom_object  # by POST /deployments
        known = _presumed(packed, answers, sbom_checked) if attempt == 0 and presume else {}
        for layer in [*packed.layers, *sbom_object]:
            report = _ship_layer(api, layer, ship, known, offers.pop(layer["digest"], None))
            if layer["digest"] not in reports or report["uploaded"]:
                reports[layer["digest"]] = report
        if not register:
            manifest_bytes = Path(packed.artifact).stat().st_size
            break
        try:
            manifest_bytes = register_manifest(api, packed, app)["manifest_bytes"]
            break
        except RemoteError as exc:
            if exc.http_status != 409 or attempt == _ATTEMPTS - 1:
                raise
    layers = [reports[layer["digest"]] for layer in packed.layers]
    sbom = [reports[item["digest"]] for item in sbom_object]
    uploaded = sum(item["uploaded_bytes"] for item in [*layers, *sbom])
    return {
        "uploaded_bytes": uploaded + manifest_bytes,
        "skipped_upload": not any(item["uploaded"] for item in [*layers, *sbom]),
        "layers": layers,
        "sbom_upload": {key: sbom[0][key] for key in _SBOM_FIELDS} if sbom else None,
    }


_SBOM_FIELDS = ("digest", "size_bytes", "uploaded", "uploaded_bytes")


def _reports_of(result: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The reports of an earlier :func:`upload_layered` result, by digest."""
    if result is None:
        return {}
    items = [*result["layers"], *([result["sbom_upload"]] if result["sbom_upload"] else [])]
    return {item["digest"]: dict(item) for item in items}


def _presumed(
    packed: Any, answers: Mapping[str, bool] | None, sbom: list[dict[str, Any]]
) -> dict[str, bool]:
    """What the first attempt takes as known: the answers the deploy already has, and every
    layer reused from the local layer cache as held (a code-only redeploy's deps layer). The
    ``sbom`` given is taken as held beside a reused layer (made from the same lockfile, it
    went up with it); it is given only where the registration refuses a manifest whose SBOM
    is not stored (``POST /deployments``): ``POST /artifacts/manifests`` registers without."""
    reused = {layer["digest"]: True for layer in packed.layers if layer.get("reused")}
    if reused:
        reused.update({item["digest"]: True for item in sbom})
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


class _Shipping(NamedTuple):
    """Where and how the layers of one deploy go."""

    app: str
    config: dict[str, Any]
    resume_root: Path
    on_progress: ProgressCallback | None
    concurrency: int


def layer_request(layer: Mapping[str, Any], app: str) -> UploadRequest:
    """The upload of one layer (or the SBOM object) for ``app``."""
    return UploadRequest(
        artifact=Path(layer["path"]),
        app_name=app,
        digest=layer["digest"],
        size_bytes=layer["size"],
        compression=layer.get("compression") or _compression(layer["media_type"]),
    )


def _ship_layer(
    api: ApiClient,
    layer: dict[str, Any],
    ship: _Shipping,
    known: Mapping[str, bool],
    opened: Opened | None,
) -> dict[str, Any]:
    digest = layer["digest"]
    fields = {
        "name": layer["name"],
        "digest": digest,
        "size_bytes": layer["size"],
        "files": layer["files"],
    }
    held = known.get(digest)
    if held is None and opened is None:
        held = api.exists(f"/artifacts/{digest}?app={ship.app}")  # held for this app (possession)
    if held:
        return {**fields, "uploaded": False, "uploaded_bytes": 0}
    if ship.on_progress is not None:
        ship.on_progress("upload", 0, layer["size"])
    result = upload_artifact(
        api,
        layer_request(layer, ship.app),
        config=ship.config,
        resume_root=ship.resume_root,
        on_progress=ship.on_progress,
        concurrency=ship.concurrency,
        opened=opened,
    )
    return {
        **fields,
        "uploaded": not result.skipped,
        "uploaded_bytes": result.uploaded_bytes,
        "multipart": result.multipart,
    }


def _compression(media_type: str) -> str:
    return "gzip" if media_type.endswith("+gzip") else "zstd"


def manifest_fields(packed: Any) -> dict[str, Any]:
    """The manifest's exact text (and its signature), as ``POST /artifacts/manifests`` and
    ``POST /deployments`` take them."""
    fields: dict[str, Any] = {"manifest": Path(packed.artifact).read_text(encoding="utf-8")}
    if packed.signature_hex:
        fields["signature"] = packed.signature_hex
    return fields


def register_manifest(api: ApiClient, packed: Any, app: str) -> dict[str, Any]:
    """``POST /artifacts/manifests`` with the manifest's exact bytes (and the signature)."""
    fields = manifest_fields(packed)
    answer = api.post("/artifacts/manifests", {"app_name": app, **fields})
    size = len(fields["manifest"].encode("utf-8"))
    return {**answer, "manifest_bytes": 0 if answer.get("duplicate") else size}

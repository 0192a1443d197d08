"""``aether fetch``: download a deployment's artifact, verify it, then extract it.

The init container's entry point. With ``--api``/``--deployment`` it asks the control plane for
a fresh presigned URL (``GET /artifacts/{digest}/download?format=json``) on every attempt, so an
expired URL or a dropped connection just means another try; with ``--url`` it downloads that
URL. The bytes are hashed while they stream to a temporary file beside the destination; only
when the sha256 matches (and, with a public key, the Ed25519 signature verifies) is the archive
extracted, safely and atomically, and ``DEST/.aether/deployment.json`` written. On any
mismatch nothing is extracted and the command exits non-zero. A layered artifact's manifest
(docs/artifact-format.md) is verified the same way, then each layer it names is downloaded
(the deployment's pull token may fetch them) and checked against its digest before the layers
are extracted into DEST together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether.client.api import CONNECT_TIMEOUT_SECS, ApiClient, new_session
from aether.client.http import TransportError
from aether.errors import IntegrityError, NetworkError, RemoteError, UsageError
from aether.models import is_digest
from aether.settings import ExpansionLimits

CHUNK = 1024 * 1024
READ_TIMEOUT_SECS = 60.0
DEFAULT_ATTEMPTS = 5
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class FetchRequest:
    dest: Path
    digest: str | None = None  # required with ``url``; read from the deployment otherwise
    api_url: str | None = None
    deployment_id: str | None = None
    token: str | None = None
    url: str | None = None
    public_key: str | None = None
    signature: str | None = None  # read from the deployment/artifact when not given
    attempts: int = DEFAULT_ATTEMPTS
    allow_insecure_http: bool = False  # send the token over http:// off this machine
    limits: ExpansionLimits = ExpansionLimits()  # how far the archive may expand


@dataclass(frozen=True)
class FetchResult:
    dest: Path
    digest: str
    deployment_id: str | None
    size_bytes: int
    entries: int
    signature_verified: bool
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "digest": self.digest,
            "deployment_id": self.deployment_id,
            "size_bytes": self.size_bytes,
            "entries": self.entries,
            "signature_verified": self.signature_verified,
            "seconds": round(self.seconds, 3),
        }


class _Transient(Exception):
    """A failed attempt worth repeating (network, 5xx, an expired URL)."""


def fetch(request: FetchRequest, *, sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    """Download, verify, extract; raises before extracting anything when bytes do not match."""
    started = time.monotonic()
    _check(request)
    api = None
    if request.api_url:
        api = ApiClient(
            request.api_url, request.token, allow_insecure_http=request.allow_insecure_http
        )
    try:
        digest, signature = _expected(request, api)
        with _temp_file(request.dest) as part:
            size, actual = _download_with_retries(
                request, api, digest, part, sleep, direct=request.url
            )
            if actual != digest:
                raise IntegrityError(
                    f"digest mismatch: downloaded bytes hash to {actual}, expected {digest}; "
                    "nothing was extracted"
                )
            verified = _check_signature(request.public_key, digest, signature)
            if _is_manifest(part):
                layered = _fetch_layers(request, api, part, sleep)
                size += layered.size
                entries = layered.entries
            else:
                entries = _extract(part, request.dest, request.limits)
    finally:
        if api is not None:
            api.close()
    write_deployment_json(request.dest, digest=digest, deployment_id=request.deployment_id)
    return FetchResult(
        request.dest, digest, request.deployment_id, size, entries, verified,
        time.monotonic() - started,
    )  # fmt: skip


def _is_manifest(path: Path) -> bool:
    from aether.pack.artifact_manifest import looks_like_manifest

    with path.open("rb") as handle:
        return looks_like_manifest(handle.read(32))


@dataclass(frozen=True)
class _Layered:
    size: int  # bytes of the layers downloaded
    entries: int


def _fetch_layers(
    request: FetchRequest,
    api: ApiClient | None,
    manifest_file: Path,
    sleep: Callable[[float], None],
) -> _Layered:
    """A layered artifact: every layer the (verified) manifest names, each checked against
    its digest before anything is extracted, then composed into DEST."""
    from aether.pack.artifact_manifest import parse_artifact_manifest
    from aether.pack.compose import extract_layers

    if api is None:
        raise UsageError(
            "the digest names a layered artifact: fetch it with --api and --deployment, "
            "which can also download its layers"
        )
    manifest = parse_artifact_manifest(manifest_file.read_bytes())
    size = 0
    with contextlib.ExitStack() as stack:
        files = {}
        for layer in manifest.layers:
            part = stack.enter_context(_temp_file(request.dest))
            got, actual = _download_with_retries(request, api, layer.digest, part, sleep)
            if actual != layer.digest or got != layer.size:
                raise IntegrityError(
                    f"digest mismatch: the {layer.name} layer hashes to {actual}, the manifest "
                    f"names {layer.digest}; nothing was extracted"
                )
            files[layer.name] = part
            size += got
        target = request.dest / ".aether-staging" if request.dest.is_dir() else request.dest
        entries = extract_layers(manifest, files, target, limits=request.limits)
        if target != request.dest:
            for child in target.iterdir():
                os.rename(child, request.dest / child.name)
            target.rmdir()
    return _Layered(size, entries)


def _check(request: FetchRequest) -> None:
    if request.url is None and not (request.api_url and request.deployment_id):
        raise UsageError("give --api URL with --deployment ID, or --url URL with --digest HEX")
    if request.url is not None and not request.digest:
        raise UsageError("--url needs --digest: the bytes are checked before extraction")
    if request.digest is not None and not is_digest(request.digest):
        raise UsageError(f"--digest {request.digest!r} is not 64 lowercase hex characters")
    if request.dest.exists() and (not request.dest.is_dir() or any(request.dest.iterdir())):
        raise UsageError(f"{request.dest} already exists and is not empty; choose a new folder")


def _expected(request: FetchRequest, api: ApiClient | None) -> tuple[str, str | None]:
    """The digest to check (given, or the deployment's) and the signature, if any."""
    digest, signature = request.digest, request.signature
    if api is not None and request.deployment_id:
        deployment = api.get(f"/deployments/{request.deployment_id}")
        recorded = deployment.get("artifact_digest")
        if digest and recorded and digest != recorded:
            raise IntegrityError(
                f"--digest {digest} is not the digest of deployment {request.deployment_id} "
                f"({recorded}); nothing was downloaded"
            )
        digest = digest or recorded
        signature = signature or deployment.get("signature")
        if request.public_key and not signature:
            signature = _artifact_signature(api, str(digest))
    if not digest or not is_digest(digest):
        raise IntegrityError("the control plane did not name a valid artifact digest")
    return digest, signature


def _artifact_signature(api: ApiClient, digest: str) -> str | None:
    try:
        return api.get(f"/artifacts/{digest}").get("signature")
    except RemoteError:
        return None  # a pull token may not read artifact metadata; then pass --signature


@contextlib.contextmanager
def _temp_file(dest: Path) -> Any:
    """The download's temporary file: inside DEST when it exists (an init container's volume
    mount, where the parent may be read-only), else beside it."""
    folder = dest if dest.is_dir() else dest.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".aether-", suffix=".download", dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _download_with_retries(
    request: FetchRequest,
    api: ApiClient | None,
    digest: str,
    part: Path,
    sleep: Callable[[float], None],
    direct: str | None = None,
) -> tuple[int, str]:
    """Download ``digest`` from ``direct`` (a given URL), else a fresh URL from the API."""
    endpoint = f"/artifacts/{digest}/download"
    return _with_retries(
        lambda: _download(direct or _fresh_url(api, endpoint), part), request.attempts, sleep
    )


def download_sbom(
    api: ApiClient, digest: str, dest: Path, *, sleep: Callable[[float], None] = time.sleep
) -> tuple[int, str]:
    """The SBOM the layered artifact ``digest`` names, into ``dest``; (size, sha256)."""
    endpoint = f"/artifacts/{digest}/sbom"
    return _with_retries(lambda: _download(_fresh_url(api, endpoint), dest), 3, sleep)


def _with_retries(
    attempt_once: Callable[[], tuple[int, str]], attempts: int, sleep: Callable[[float], None]
) -> tuple[int, str]:
    delay = 0.5
    for attempt in range(1, max(attempts, 1) + 1):
        try:
            return attempt_once()
        except _Transient as exc:
            if attempt >= attempts:
                raise NetworkError(f"download failed after {attempt} attempts: {exc}") from exc
            sleep(delay)
            delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")


def _fresh_url(api: ApiClient | None, endpoint: str) -> str:
    """A short-lived URL from ``endpoint`` (``…/download`` or ``…/sbom``) with ?format=json."""
    assert api is not None
    try:
        answer = api.get(endpoint, format="json")
    except NetworkError as exc:
        raise _Transient(exc.message) from exc
    except RemoteError as exc:
        if exc.http_status in _TRANSIENT_STATUS:
            raise _Transient(exc.message) from exc
        raise
    url = answer.get("url")
    if not isinstance(url, str) or not url:
        raise IntegrityError("the control plane answered without a download URL")
    return url


def _download(url: str, part: Path) -> tuple[int, str]:
    """Stream ``url`` into ``part`` while hashing; (size, sha256 hex)."""
    hasher, size = hashlib.sha256(), 0
    session = new_session()
    try:
        with session.get(
            url, stream=True, timeout=(CONNECT_TIMEOUT_SECS, READ_TIMEOUT_SECS)
        ) as response:
            if response.status_code >= 400:
                message = f"GET {url.split('?', 1)[0]} answered {response.status_code}"
                if response.status_code in _TRANSIENT_STATUS or response.status_code == 403:
                    raise _Transient(message)  # 403: the presigned URL expired on the way
                raise NetworkError(message)
            with part.open("wb") as out:
                for chunk in response.iter_content(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
    except TransportError as exc:
        raise _Transient(str(exc)) from exc
    finally:
        session.close()
    return size, hasher.hexdigest()


def _check_signature(public_key: str | None, digest: str, signature: str | None) -> bool:
    if not public_key:
        return False
    from aether.pack.signing import verify_signature

    if not signature:
        raise IntegrityError(
            "--public-key was given but there is no signature to check; pass --signature"
        )
    if not verify_signature(public_key, digest, signature):
        raise IntegrityError("the artifact signature does not verify; nothing was extracted")
    return True


def _extract(part: Path, dest: Path, limits: ExpansionLimits) -> int:
    """A new DEST is renamed into place whole; an existing empty DEST (a volume mount that
    cannot be replaced) gets the verified tree extracted beside the download, then moved in."""
    from aether.pack.extract import safe_extract

    if not dest.is_dir():
        return safe_extract(part, dest, limits=limits)
    staging = dest / ".aether-staging"
    entries = safe_extract(part, staging, limits=limits)
    for child in staging.iterdir():
        os.rename(child, dest / child.name)
    staging.rmdir()
    return entries


def write_deployment_json(dest: Path, *, digest: str, deployment_id: str | None) -> Path:
    """``DEST/.aether/deployment.json`` with the digest and deployment id (atomic write)."""
    marker = dest / ".aether" / "deployment.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    body = {"digest": digest, "deployment_id": deployment_id}
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, marker)
    return marker

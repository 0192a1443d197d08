"""The admission checks when a deployment of a layered artifact is created, on the local store
and on S3 (moto), on SQLite and PostgreSQL: its signature (``AETHER_REQUIRE_SIGNATURE``) and its
SBOM. An uploaded SBOM is stored once and named by the artifact; it must be the manifest's and
CycloneDX; ``AETHER_REQUIRE_SBOM`` refuses artifacts without one (format 1 too) and the deny
lists refuse packages and licences."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import artifacts_support
import pytest
from artifacts_support import Uploader, blob

from aether.pack.artifact_manifest import MEDIA_TYPES, ArtifactManifest, LayerRef, artifact_digest
from aether.pack.signing import generate_keypair, sign_digest

store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api

SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "components": [
        {"name": "left-pad", "version": "1.3.0", "licenses": [{"license": {"id": "WTFPL"}}]},
        {
            "group": "@babel",
            "name": "core",
            "version": "7.24.0",
            "licenses": [{"expression": "MIT OR Apache-2.0"}],
        },
    ],
}


def sbom_bytes(document: Any = SBOM) -> bytes:
    return json.dumps(document, sort_keys=True).encode()


def layered(
    up: Uploader,
    sbom: bytes | None,
    *,
    upload_sbom: bool = True,
    held: bool = False,
    signing_key: str | None = None,
) -> str:
    """Upload an app layer (and the SBOM), register a manifest naming them; its digest.
    ``held``: the app holds the SBOM already (uploaded with an earlier artifact)."""
    body, digest = blob(3_000)
    assert up.upload(body).status_code == 200
    sbom_digest = hashlib.sha256(sbom).hexdigest() if sbom is not None else None
    if sbom is not None and upload_sbom:
        done = up.upload(sbom, compression="none")
        assert done.status_code == 200, done.text
        assert done.json()["storage_key"].endswith(f"/{sbom_digest}/object")
    ref = LayerRef(
        name="app",
        digest=digest,
        size=len(body),
        media_type=MEDIA_TYPES["zstd"],
        index_sha256="1" * 64,
        files=1,
        bytes=3_000,
    )
    raw = ArtifactManifest((ref,), 0, 20, sbom_digest).encode()
    body = {"app_name": up.app, "manifest": raw.decode()}
    if signing_key:
        body["signature"] = sign_digest(signing_key, artifact_digest(raw))
    answer = up.api.post("/artifacts/manifests", json=body, as_=up.as_)
    assert answer.status_code == 200, answer.text
    named = answer.json()["sbom"]
    assert named == (
        {"digest": sbom_digest, "size_bytes": len(sbom)} if sbom and (upload_sbom or held) else None
    )
    return artifact_digest(raw)


def deploy(up: Uploader, digest: str) -> Any:
    body = {"app_name": up.app, "artifact_digest": digest}
    return up.api.post("/deployments", json=body, as_=up.as_)


def refused(answer: Any, code: str, *words: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["code"] == code and all(word in error["message"] for word in words), error


def test_an_uploaded_sbom_is_stored_once_and_checked_at_deployment(registry_api) -> None:  # type: ignore[no-untyped-def]
    up = Uploader(registry_api())
    first = layered(up, sbom_bytes())
    assert deploy(up, first).status_code == 201
    link = up.api.get(f"/artifacts/{first}/sbom?format=json", as_="reader")
    assert link.status_code == 200, link.text
    fetched = up.get_url(link.json()["url"])
    assert fetched == sbom_bytes()
    assert up.api.get(f"/artifacts/{first}/sbom", as_=None).status_code == 401
    without = up.api.get(f"/artifacts/{layered(up, None)}/sbom", as_="reader")
    assert without.status_code == 404 and "no uploaded SBOM" in without.json()["message"]
    # a code-only redeploy names the same SBOM: the server holds it, nothing is uploaded
    presigned = up.presign(hashlib.sha256(sbom_bytes()).hexdigest(), len(sbom_bytes()))
    assert presigned.json()["method"] == "NONE"
    second = layered(up, sbom_bytes(), upload_sbom=False, held=True)
    assert deploy(up, second).status_code == 201
    # not CycloneDX: refused when deployed, saying why
    broken = layered(up, sbom_bytes({"bomFormat": "SPDX"}))
    refused(deploy(up, broken), "bad_request", "not CycloneDX")
    nameless = layered(up, sbom_bytes({**SBOM, "components": [{"version": "1"}]}))
    refused(deploy(up, nameless), "bad_request", "components[0] has no name")


def change_the_stored_sbom(api) -> None:  # type: ignore[no-untyped-def]
    """Replace the stored SBOM's bytes in the blob store (its key stays, its content moves)."""
    stored = api.get(f"/artifacts/{hashlib.sha256(sbom_bytes()).hexdigest()}").json()
    other = sbom_bytes({**SBOM, "components": []})

    async def overwrite() -> None:
        sha = hashlib.sha256(other).hexdigest()
        await api.state.blobs.put_file(stored["storage_key"], io.BytesIO(other), sha256=sha)

    api.client.portal.call(overwrite)


def test_an_sbom_changed_in_the_store_is_refused(registry_api) -> None:  # type: ignore[no-untyped-def]
    api = registry_api()
    up = Uploader(api)
    digest = layered(up, sbom_bytes())
    key = api.head(f"/artifacts/{hashlib.sha256(sbom_bytes()).hexdigest()}", as_="deployer")
    assert key.status_code == 200
    change_the_stored_sbom(api)
    refused(deploy(up, digest), "digest_mismatch", "SBOM", "hashes to")


def test_an_sbom_read_for_one_artifact_is_not_read_again_for_the_next(registry_api) -> None:  # type: ignore[no-untyped-def]
    """A code-only redeploy's new artifact names the same SBOM: what was read and verified
    for the first is remembered by its sha256, so the store is not read again (an object
    changed in the store meanwhile does not reach this check); the policy still applies."""
    api = registry_api(env={"AETHER_SBOM_DENY_LICENSES": "GPL-3.0"})
    up = Uploader(api)
    assert deploy(up, layered(up, sbom_bytes())).status_code == 201
    change_the_stored_sbom(api)
    second = layered(up, sbom_bytes(), upload_sbom=False, held=True)
    assert deploy(up, second).status_code == 201
    denied_sbom = sbom_bytes(
        {**SBOM, "components": [{"name": "x", "licenses": [{"license": {"id": "GPL-3.0"}}]}]}
    )
    refused(deploy(up, layered(up, denied_sbom)), "bad_request", "GPL-3.0")
    again = layered(up, denied_sbom, upload_sbom=False, held=True)
    refused(deploy(up, again), "bad_request", "GPL-3.0")  # remembered, and still refused


def test_require_sbom_refuses_artifacts_without_one(registry_api) -> None:  # type: ignore[no-untyped-def]
    api = registry_api(env={"AETHER_REQUIRE_SBOM": "1"})
    up = Uploader(api)
    assert api.get("/config").json()["require_sbom"] is True
    refused(deploy(up, layered(up, None)), "bad_request", "no uploaded SBOM", "REQUIRE_SBOM")
    not_uploaded = layered(up, sbom_bytes(), upload_sbom=False)  # an older client's
    refused(deploy(up, not_uploaded), "bad_request", "no uploaded SBOM")
    archive, _ = blob(5_000)  # a single archive (format 1) carries none
    stored = up.upload(archive).json()
    refused(deploy(up, stored["digest"]), "bad_request", "format 1", "--single-file")
    assert deploy(up, layered(up, sbom_bytes())).status_code == 201


def test_archives_and_artifacts_without_sbom_deploy_when_it_is_not_required(
    registry_api,  # type: ignore[no-untyped-def]
) -> None:
    up = Uploader(registry_api(env={"AETHER_SBOM_DENY_PACKAGES": "left-pad"}))
    archive, _ = blob(5_000)
    assert deploy(up, up.upload(archive).json()["digest"]).status_code == 201
    assert deploy(up, layered(up, None)).status_code == 201


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"AETHER_SBOM_DENY_PACKAGES": "lodash, left-pad"}, "left-pad@1.3.0 is denied"),
        ({"AETHER_SBOM_DENY_PACKAGES": "@babel/core@7.24.0"}, "@babel/core@7.24.0 is denied"),
        ({"AETHER_SBOM_DENY_LICENSES": "wtfpl"}, "denied licence WTFPL"),
        ({"AETHER_SBOM_DENY_LICENSES": "Apache-2.0"}, "@babel/core@7.24.0 carries"),
    ],
)
def test_deny_lists_refuse_packages_and_licences(
    registry_api,  # type: ignore[no-untyped-def]
    env: dict[str, str],
    words: str,
) -> None:
    up = Uploader(registry_api(env=env))
    refused(deploy(up, layered(up, sbom_bytes())), "bad_request", words)
    clean = sbom_bytes({**SBOM, "components": [{"name": "express", "version": "4.21.0"}]})
    assert deploy(up, layered(up, clean)).status_code == 201


def test_require_signature_holds_for_layered_artifacts(registry_api) -> None:  # type: ignore[no-untyped-def]
    """The manifest's digest is what is signed: unsigned, or signed by a key the app does not
    hold, is refused at deployment; signed by a registered key deploys."""
    api = registry_api(env={"AETHER_REQUIRE_SIGNATURE": "1"})
    up = Uploader(api)
    seed, public = generate_keypair()
    other_seed, _ = generate_keypair()
    refused(deploy(up, layered(up, sbom_bytes())), "bad_request", "REQUIRE_SIGNATURE")
    added = api.post("/apps/shop/public-keys", json={"public_key_hex": public}, as_=up.as_)
    assert added.status_code == 201, added.text
    stranger = layered(up, sbom_bytes(), held=True, upload_sbom=False, signing_key=other_seed)
    refused(deploy(up, stranger), "bad_request", "REQUIRE_SIGNATURE")
    signed = layered(up, sbom_bytes(), held=True, upload_sbom=False, signing_key=seed)
    assert deploy(up, signed).status_code == 201

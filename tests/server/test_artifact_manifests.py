"""``POST /artifacts/manifests`` on the local store and on S3 (moto): a layered artifact is
registered once its layers are stored; it is refused when it is not canonical or a layer is
missing; stored bytes are counted on every upload path."""

from __future__ import annotations

import artifacts_support
from artifacts_support import Uploader, blob, uploaded_bytes

from aether.pack.artifact_manifest import (
    MEDIA_TYPES,
    ArtifactManifest,
    LayerRef,
    artifact_digest,
)

store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api


def layer(name: str, body: bytes, digest: str, tar_sha256: str | None = None) -> LayerRef:
    return LayerRef(
        name=name,
        digest=digest,
        size=len(body),
        media_type=MEDIA_TYPES["zstd"],
        index_sha256="1" * 64,
        files=1,
        bytes=len(body),
        tar_sha256=tar_sha256,  # recorded by earlier builds only
    )


def register(up: Uploader, raw: bytes, **extra: object):  # type: ignore[no-untyped-def]
    body = {"app_name": up.app, "manifest": raw.decode(), **extra}
    return up.api.post("/artifacts/manifests", json=body, as_=up.as_)


def test_a_layered_artifact_is_registered_once_its_layers_are_stored(registry_api) -> None:  # type: ignore[no-untyped-def]
    api = registry_api()
    up = Uploader(api)
    deps_body, deps_digest = blob(50_000)
    app_body, app_digest = blob(3_000)
    manifest = ArtifactManifest(
        (layer("deps", deps_body, deps_digest), layer("app", app_body, app_digest)), 0, 20
    )
    raw = manifest.encode()
    before = uploaded_bytes(api)
    assert up.upload(deps_body).status_code == 200
    # the app layer is not stored yet: refused, naming it
    missing = register(up, raw)
    assert missing.status_code == 409 and app_digest in missing.json()["message"]
    assert up.upload(app_body).status_code == 200  # a presigned upload counts its bytes
    assert uploaded_bytes(api) - before == len(deps_body) + len(app_body)

    done = register(up, raw)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["digest"] == artifact_digest(raw) and answer["duplicate"] is False
    assert answer["storage_key"].endswith("/artifact.json")
    assert [item["name"] for item in answer["layers"]] == ["deps", "app"]
    assert uploaded_bytes(api) - before == len(deps_body) + len(app_body) + len(raw)
    assert api.head(f"/artifacts/{answer['digest']}", as_="reader").status_code == 200
    again = register(up, raw).json()
    assert again["duplicate"] is True and again["artifact_id"] == answer["artifact_id"]

    # a second artifact reuses the deps layer: nothing of it is uploaded again
    other_body, _ = blob(2_000)
    second = ArtifactManifest(
        (
            layer("deps", deps_body, deps_digest),
            layer("app", other_body, up.upload(other_body).json()["digest"]),
        ),
        0,
        20,
    )
    assert register(up, second.encode()).status_code == 200
    deployed = api.post(
        "/deployments",
        json={"app_name": "shop", "artifact_digest": artifact_digest(second.encode())},
        as_="deployer",
    )
    assert deployed.status_code == 201, deployed.text


def test_a_manifest_recording_tar_sha256_is_registered_and_deployed(registry_api) -> None:  # type: ignore[no-untyped-def]
    """Earlier builds recorded each layer's tar_sha256: such a manifest is still accepted,
    beside one that does not record it, as another artifact over the same layers."""
    api = registry_api()
    up = Uploader(api)
    app_body, app_digest = blob(3_000)
    up.upload(app_body)
    current = ArtifactManifest((layer("app", app_body, app_digest),), 0).encode()
    earlier = ArtifactManifest((layer("app", app_body, app_digest, "2" * 64),), 0).encode()
    assert b"tar_sha256" not in current and b'"tar_sha256":"' + b"2" * 64 in earlier
    for raw in (current, earlier):
        done = register(up, raw)
        assert done.status_code == 200, done.text
        assert done.json()["digest"] == artifact_digest(raw)
        deployed = api.post(
            "/deployments",
            json={"app_name": up.app, "artifact_digest": artifact_digest(raw)},
            as_=up.as_,
        )
        assert deployed.status_code == 201, deployed.text
    bad = earlier.replace(b"2" * 64, b"2" * 63 + b"G")
    refused = register(up, bad)
    assert refused.status_code == 400 and "tar_sha256" in refused.json()["message"]


def test_a_manifest_that_is_not_canonical_or_not_one_is_refused(registry_api) -> None:  # type: ignore[no-untyped-def]
    up = Uploader(registry_api())
    app_body, app_digest = blob(3_000)
    up.upload(app_body)
    raw = ArtifactManifest((layer("app", app_body, app_digest),), 0).encode()
    spaced = raw.replace(b'":', b'": ', 1)
    bad = register(up, spaced)
    assert bad.status_code == 400 and "canonical" in bad.json()["message"]
    assert register(up, b'{"format":"something-else"}').status_code == 400
    assert register(up, raw, signature="not-hex").status_code == 400
    assert register(up, raw).status_code == 200


def test_a_layer_is_reused_only_by_an_app_that_holds_it(registry_api) -> None:  # type: ignore[no-untyped-def]
    """Knowing another tenant's layer digest grants nothing: the manifest is refused until
    the app uploads the layer's bytes itself, and then one copy is kept."""
    api = registry_api()
    owner = Uploader(api, app="first", as_="deployer")
    deps_body, deps_digest = blob(40_000)
    app_body, app_digest = blob(2_000)
    owner.upload(deps_body)
    owner.upload(app_body)
    raw = ArtifactManifest(
        (layer("deps", deps_body, deps_digest), layer("app", app_body, app_digest)), 0
    ).encode()
    assert register(owner, raw).status_code == 200

    other = Uploader(api, app="second", as_="other")
    other_body, other_digest = blob(1_000)
    assert api.post("/apps", json={"name": "second"}, as_="other").status_code == 201
    assert other.upload(other_body).status_code == 200
    theirs = ArtifactManifest(
        (layer("deps", deps_body, deps_digest), layer("app", other_body, other_digest)), 0
    ).encode()
    refused = register(other, theirs)
    assert refused.status_code == 409 and deps_digest in refused.json()["message"]
    assert api.head(f"/artifacts/{deps_digest}?app=second", as_="other").status_code == 404

    proved = other.upload(deps_body)  # the bytes themselves prove possession
    assert proved.status_code == 200 and proved.json()["duplicate"] is True
    assert register(other, theirs).status_code == 200
    assert api.head(f"/artifacts/{deps_digest}?app=second", as_="other").status_code == 200


def test_a_deployment_registers_the_manifest_it_carries(registry_api) -> None:  # type: ignore[no-untyped-def]
    """``POST /deployments`` with ``manifest``: registered first as ``POST
    /artifacts/manifests`` would (409 naming a missing layer), then released."""
    api = registry_api()
    up = Uploader(api)
    config = api.get("/config", as_="deployer").json()
    assert config["inline_manifests"] is True and config["artifact_manifest_revision"] == 2
    deps_body, deps_digest = blob(20_000)
    app_body, app_digest = blob(1_500)
    up.upload(deps_body)
    raw = ArtifactManifest(
        (layer("deps", deps_body, deps_digest), layer("app", app_body, app_digest)), 0
    ).encode()
    digest = artifact_digest(raw)

    def deploy(**fields: object):  # type: ignore[no-untyped-def]
        body = {"app_name": up.app, "artifact_digest": digest, **fields}
        return api.post("/deployments", json=body, as_=up.as_)

    missing = deploy(manifest=raw.decode())
    assert missing.status_code == 409 and app_digest in missing.json()["message"]
    assert missing.json()["code"] == "conflict"
    assert api.head(f"/artifacts/{digest}?app={up.app}", as_=up.as_).status_code == 404
    up.upload(app_body)
    other = deploy(manifest=raw.decode().replace('"app"', '"App"', 1))
    assert other.status_code == 400 and "sha256" in other.json()["message"]
    assert deploy(manifest=raw.decode(), signature="not-hex").status_code == 400
    created = deploy(manifest=raw.decode())
    assert created.status_code == 201, created.text
    assert created.json()["artifact_digest"] == digest
    assert api.head(f"/artifacts/{digest}?app={up.app}", as_=up.as_).status_code == 200
    again = deploy(manifest=raw.decode())  # registered already: the same release
    assert again.status_code == 200 and again.json()["unchanged"] is True

    # Sent this way, the SBOM a manifest names must be stored too (the client may have taken
    # it as uploaded with the dependencies): 409 naming it, nothing registered.
    sbom_body, sbom_digest = blob(800)
    named = ArtifactManifest(
        (layer("deps", deps_body, deps_digest), layer("app", app_body, app_digest)),
        0,
        sbom_sha256=sbom_digest,
    ).encode()
    digest = artifact_digest(named)
    lacking = deploy(manifest=named.decode())
    assert lacking.status_code == 409 and sbom_digest in lacking.json()["message"]
    assert api.head(f"/artifacts/{digest}?app={up.app}", as_=up.as_).status_code == 404
    assert register(up, named).json()["sbom"] is None  # the manifest route registers without
    up.upload(sbom_body, compression="none")
    assert deploy(manifest=named.decode()).status_code == 201

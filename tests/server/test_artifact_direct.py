"""``PUT /artifacts/{digest}/content``: a small object uploaded to the API itself in one
request, on the local store and on S3 (moto): verified against its digest, stored once,
refused above the direct-upload limit."""

from __future__ import annotations

import artifacts_support
from artifacts_support import Uploader, blob, uploaded_bytes

store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api


def put(api, digest: str, body: bytes, *, app: str = "shop", as_: str = "deployer"):  # type: ignore[no-untyped-def]
    return api.request("PUT", f"/artifacts/{digest}/content?app={app}", content=body, as_=as_)


def test_a_small_object_is_stored_in_one_request(registry_api) -> None:  # type: ignore[no-untyped-def]
    api = registry_api(env={"AETHER_MAX_BODY_BYTES": "8192"})
    assert api.get("/config", as_="deployer").json()["direct_upload_max_bytes"] == 8192
    body, digest = blob(3_000)
    before = uploaded_bytes(api)
    stored = put(api, digest, body)
    assert stored.status_code == 200, stored.text
    assert uploaded_bytes(api) - before == len(body)  # counted as any stored upload is
    answer = stored.json()
    assert answer["digest"] == digest and answer["duplicate"] is False
    assert answer["status"] == "stored"
    # held for the app now, created by the upload: a presign has nothing to add
    assert api.head(f"/artifacts/{digest}?app=shop", as_="deployer").status_code == 200
    assert Uploader(api).presign(digest, len(body)).json()["method"] == "NONE"
    again = put(api, digest, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert uploaded_bytes(api) - before == len(body)  # a duplicate stores nothing


def test_bytes_that_are_not_the_digest_or_too_many_are_refused(registry_api) -> None:  # type: ignore[no-untyped-def]
    api = registry_api(env={"AETHER_MAX_BODY_BYTES": "8192"})
    body, digest = blob(2_000)
    wrong = put(api, digest, body + b"x")
    assert wrong.status_code == 400 and wrong.json()["code"] == "digest_mismatch"
    big, big_digest = blob(9_000)
    refused = put(api, big_digest, big)
    assert refused.status_code == 413 and refused.json()["code"] == "payload_too_large"
    assert put(api, "not-a-digest", body).status_code == 400
    assert put(api, digest, body, app="Not An App").status_code == 400
    assert put(api, digest, body, as_="reader").status_code == 403
    assert api.head(f"/artifacts/{digest}?app=shop", as_="deployer").status_code == 404
    assert api.head(f"/artifacts/{big_digest}?app=shop", as_="deployer").status_code == 404

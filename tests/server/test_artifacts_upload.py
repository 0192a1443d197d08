"""The presigned and multipart upload protocols on both blob stores and both databases."""

from __future__ import annotations

import hashlib
import io

import artifacts_support
from artifacts_support import MIB, Uploader, blob

# fixtures shared by the artifact test modules
store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api


def test_presign_put_complete_then_head_detail_and_duplicates(registry_api):
    api = registry_api()
    up = Uploader(api)
    body, digest = blob(10_000)
    assert api.head(f"/artifacts/{digest}", as_="reader").status_code == 404

    done = up.upload(body)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["digest"] == digest and answer["status"] == "stored"
    assert answer["duplicate"] is False and answer["verified"] is False
    assert answer["storage_key"] == f"artifacts/shop/{digest}/app.tar.zst"

    head = api.head(f"/artifacts/{digest}", as_="reader")
    assert head.status_code == 200 and head.content == b""
    invalid = api.head("/artifacts/not-a-digest", as_="reader")
    assert invalid.status_code == 400 and invalid.content == b""
    detail = api.get(f"/artifacts/{digest}", as_="reader").json()
    assert detail["status"] == "stored" and detail["size_bytes"] == len(body)
    assert detail["app_name"] == "shop" and detail["id"] == answer["artifact_id"]

    again = up.presign(digest, len(body)).json()
    assert again["method"] == "NONE" and again["upload_url"] is None
    repeat = up.complete(digest, len(body)).json()
    assert repeat["duplicate"] is True and repeat["artifact_id"] == answer["artifact_id"]


def test_presign_answer_carries_headers_and_expiry(registry_api, store_kind):
    up = Uploader(registry_api())
    answer = up.presign("ab" * 32, 100, compression="gzip").json()
    assert answer["method"] == "PUT"
    assert answer["storage_key"].endswith("/app.tar.gz")
    assert answer["expires_at"].endswith("Z")
    if store_kind == "s3":
        assert answer["headers"]["x-amz-meta-sha256"] == "ab" * 32
        assert "x-amz-checksum-sha256" in answer["headers"]


def test_presign_with_s3_sse_signs_the_encryption_header(make_api, s3_blob_settings):
    from dataclasses import replace

    api = make_api(blob_settings=replace(s3_blob_settings, sse="AES256"))
    up = Uploader(api)
    answer = up.presign("cd" * 32, 100).json()
    assert answer["headers"]["x-amz-server-side-encryption"] == "AES256"
    assert "x-amz-server-side-encryption" in answer["upload_url"]


def test_multipart_upload_with_resume_listing(registry_api):
    api = registry_api()
    up = Uploader(api)
    parts = [blob(5 * MIB)[0], blob(5 * MIB)[0], b"tail" * 100]
    whole = b"".join(parts)
    digest = hashlib.sha256(whole).hexdigest()
    init = up.init_multipart(digest, len(whole))
    upload_id = init["upload_id"]
    assert init["part_size_bytes"] == 8 * MIB
    first = up.put_part(digest, upload_id, 1, parts[0])

    listed = api.get(f"/artifacts/multipart/{upload_id}/parts?digest={digest}", as_="deployer")
    assert listed.status_code == 200
    assert [(p["part_number"], p["size"]) for p in listed.json()["parts"]] == [(1, 5 * MIB)]
    assert listed.json()["parts"][0]["etag"].strip('"') == first["etag"].strip('"')

    rest = [up.put_part(digest, upload_id, n, parts[n - 1]) for n in (2, 3)]
    done = up.complete_multipart(digest, len(whole), upload_id, [first, *rest])
    assert done.status_code == 200, done.text
    assert done.json()["duplicate"] is False
    assert api.head(f"/artifacts/{digest}").status_code == 200


def test_multipart_abort_drops_the_pending_row(registry_api):
    api = registry_api()
    _, digest, upload_id = Uploader(api).open_with_one_part()
    gone = api.delete(f"/artifacts/multipart/{upload_id}?digest={digest}", as_="deployer")
    assert gone.status_code == 204
    assert api.get(f"/artifacts/{digest}").status_code == 404
    listed = api.get(f"/artifacts/multipart/{upload_id}/parts?digest={digest}")
    assert listed.status_code == 404


def test_multipart_complete_with_a_wrong_etag_fails(registry_api):
    api = registry_api()
    up = Uploader(api)
    body, digest, upload_id = up.open_with_one_part()
    wrong = [{"part_number": 1, "etag": '"00000000000000000000000000000000"'}]
    done = up.complete_multipart(digest, len(body), upload_id, wrong)
    assert done.status_code == 400 and done.json()["code"] == "bad_request"
    assert api.head(f"/artifacts/{digest}").status_code == 404


def test_tampered_object_is_a_digest_mismatch_and_is_deleted(registry_api):
    """Bytes that carry the right sha256 label but other content: the re-hash sees through
    them (the local store re-hashes by default; moto verifies no checksum, so S3 here always)."""
    api = registry_api()
    up = Uploader(api)
    good, digest = blob(5000)
    bad = bytes(len(good))
    key = up.presign(digest, len(good)).json()["storage_key"]

    async def plant(db):
        await api.state.blobs.put_file(key, io.BytesIO(bad), sha256=digest)

    api.run(plant)
    done = up.complete(digest, len(good))
    assert done.status_code == 400 and done.json()["code"] == "digest_mismatch"
    assert "deleted" in done.json()["message"]
    assert api.client.portal.call(api.state.blobs.head, key) is None
    assert api.get(f"/artifacts/{digest}").json()["status"] == "pending"


def test_a_lying_client_cannot_store_bytes_under_another_digest(registry_api, store_kind):
    """Presign a digest, PUT other bytes (with every header the presign asked for), complete:
    the local store refuses the PUT itself; S3 (moto, which verifies no checksum) takes the
    bytes, and the complete re-hashes them, deletes the object and answers digest_mismatch."""
    api = registry_api()
    up = Uploader(api)
    good, digest = blob(20_000)
    other = bytes(len(good))
    presigned = up.presign(digest, len(good)).json()
    put = up.put(presigned["upload_url"], other, presigned["headers"])
    if store_kind == "local":
        assert put.status_code == 400 and put.json()["code"] == "digest_mismatch"
    else:
        assert put.status_code == 200 and api.state.store_verifies_checksums is False
    done = up.complete(digest, len(good))
    assert done.status_code == 400
    assert done.json()["code"] == ("digest_mismatch" if store_kind == "s3" else "bad_request")
    assert api.client.portal.call(api.state.blobs.head, presigned["storage_key"]) is None
    assert api.head(f"/artifacts/{digest}").status_code == 404
    # the honest upload of the same digest then goes through
    assert up.upload(good).json()["status"] == "stored"


def test_a_lying_multipart_upload_is_deleted_at_complete(registry_api):
    api = registry_api()
    up = Uploader(api)
    good, digest = blob(6 * MIB)
    init = up.init_multipart(digest, len(good))
    parts = [
        up.put_part(digest, init["upload_id"], 1, bytes(5 * MIB)),
        up.put_part(digest, init["upload_id"], 2, bytes(len(good) - 5 * MIB)),
    ]
    done = up.complete_multipart(digest, len(good), init["upload_id"], parts)
    assert done.status_code == 400 and done.json()["code"] == "digest_mismatch"
    assert api.client.portal.call(api.state.blobs.head, init["storage_key"]) is None
    assert api.head(f"/artifacts/{digest}").status_code == 404


def test_size_mismatch_at_complete(registry_api):
    up = Uploader(registry_api())
    body, digest = blob(3000)
    presigned = up.presign(digest, len(body)).json()
    up.put(presigned["upload_url"], body, presigned["headers"])
    done = up.complete(digest, len(body) + 1)
    assert done.status_code == 400 and done.json()["code"] == "digest_mismatch"


def test_complete_without_an_upload_and_with_require_presign(registry_api):
    up = Uploader(registry_api())
    _, digest = blob(100)
    missing = up.complete(digest, 100)
    assert missing.status_code == 400 and missing.json()["code"] == "bad_request"
    strict = Uploader(registry_api(env={"AETHER_REQUIRE_PRESIGN": "1"}))
    refused = strict.complete(digest, 100)
    assert refused.status_code == 400 and "presign" in refused.json()["message"]


def test_complete_without_presign_still_verifies_an_object_put_directly(registry_api):
    api = registry_api()
    up = Uploader(api)
    body, digest = blob(2000)
    key = f"artifacts/shop/{digest}/app.tar.zst"
    api.post("/apps", json={"name": "shop"}, as_="deployer")

    async def plant(db):
        await api.state.blobs.put_file(key, io.BytesIO(body), sha256=digest)

    api.run(plant)
    done = up.complete(digest, len(body))
    assert done.status_code == 200, done.text
    assert done.json()["storage_key"] == key


def test_validation_errors(registry_api):
    up = Uploader(registry_api())
    bad = up.presign("XYZ", 10)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_digest"
    zero = up.presign("ab" * 32, 0)
    assert zero.status_code == 400
    wrong_type = up.presign("ab" * 32, True)
    assert wrong_type.status_code == 400 and wrong_type.json()["code"] == "bad_request"
    odd = up.presign("ab" * 32, 10, compression="xz")
    assert odd.status_code == 400
    reader = Uploader(up.api, as_="reader").presign("ab" * 32, 10)
    assert reader.status_code == 403 and reader.json()["code"] == "forbidden"
    nobody = up.api.post("/artifacts/presign", json={}, as_=None)
    assert nobody.status_code == 401

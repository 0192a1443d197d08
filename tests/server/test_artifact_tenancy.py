"""Artifact bytes between tenants: possession before reuse, per-app existence checks, uploads
in progress that belong to their app, destroys no other tenant can block, and multipart parts
no larger than announced — on SQLite + the local store and PostgreSQL + S3 (moto).

``deployer`` and ``other`` are two deployers (two tenants); ``admin`` may deploy any app.
"""

from __future__ import annotations

import hashlib

import artifacts_support
from artifacts_support import MIB, Uploader, blob

store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api


def _deploy(api, app, digest, as_):
    body = {"app_name": app, "artifact_digest": digest}
    return api.post("/deployments", json=body, as_=as_)


def test_knowing_a_digest_grants_nothing(registry_api):
    """A deployer once deployed another tenant's digest into its own app (201), read the
    victim's code through it, and so blocked the victim's DELETE /apps (409)."""
    api = registry_api()
    victim = Uploader(api, app="victim", as_="deployer")
    body, digest = blob(3000)
    assert victim.upload(body).status_code == 200
    assert api.post("/apps", json={"name": "thief"}, as_="other").status_code == 201

    stolen = _deploy(api, "thief", digest, as_="other")
    assert stolen.status_code == 400 and "upload it" in stolen.json()["message"]
    unknown = _deploy(api, "thief", "0" * 64, as_="other")
    assert unknown.status_code == 400  # the same answer as for a digest nobody stored
    # existence checks answer per app and leak nothing across tenants
    assert api.head(f"/artifacts/{digest}?app=thief", as_="other").status_code == 404
    assert api.head(f"/artifacts/{digest}", as_="other").status_code == 404
    assert api.head(f"/artifacts/{digest}?app=victim", as_="deployer").status_code == 200
    presign = Uploader(api, app="thief", as_="other").presign(digest, len(body)).json()
    assert presign["method"] == "PUT"  # not "NONE": the thief must send the bytes

    assert api.delete("/apps/victim", as_="deployer").status_code == 204


def test_uploading_the_bytes_proves_possession_and_keeps_one_copy(registry_api):
    api = registry_api()
    body, digest = blob(4000)
    first = Uploader(api, app="first", as_="deployer").upload(body).json()
    second = Uploader(api, app="second", as_="other").upload(body)
    assert second.status_code == 200, second.text
    assert second.json()["duplicate"] is True
    assert second.json()["storage_key"] == first["storage_key"]
    second_key = f"artifacts/second/{digest}/app.tar.zst"
    assert api.client.portal.call(api.state.blobs.head, second_key) is None  # one copy
    assert _deploy(api, "second", digest, as_="other").status_code == 201
    assert api.head(f"/artifacts/{digest}?app=second", as_="other").status_code == 200

    # destroying the first app keeps the bytes the second holds, then they go with it
    assert api.delete("/apps/first", as_="deployer").status_code == 204
    stored = api.get(f"/artifacts/{digest}").json()
    assert stored["app_name"] == "second"
    assert api.client.portal.call(api.state.blobs.head, stored["storage_key"]) is not None
    assert api.delete("/apps/second", as_="other").status_code == 204
    assert api.client.portal.call(api.state.blobs.head, stored["storage_key"]) is None
    assert api.get(f"/artifacts/{digest}").status_code == 404


def test_a_principal_may_promote_between_its_own_apps(registry_api):
    api = registry_api()
    body, digest = blob(2000)
    Uploader(api, app="staging", as_="deployer").upload(body)
    api.post("/apps", json={"name": "production"}, as_="deployer")
    assert api.head(f"/artifacts/{digest}?app=production", as_="deployer").status_code == 200
    assert _deploy(api, "production", digest, as_="deployer").status_code == 201
    api.post("/apps", json={"name": "elsewhere"}, as_="other")
    assert _deploy(api, "elsewhere", digest, as_="admin").status_code == 201  # admin: any app


def test_a_recreated_app_name_never_overwrites_stored_bytes(registry_api):
    """The stored object keeps its key (artifacts/<first app>/…) after that app is destroyed;
    a new app of the same name uploads beside it, never onto it, before it is verified."""
    api = registry_api()
    body, digest = blob(2500)
    first = Uploader(api, app="shop", as_="deployer").upload(body).json()
    Uploader(api, app="keeper", as_="other").upload(body)
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    again = Uploader(api, app="shop", as_="deployer").presign(digest, len(body)).json()
    assert again["method"] == "PUT" and again["storage_key"] != first["storage_key"]


def test_a_second_app_presigning_a_pending_digest_gets_its_own_upload(registry_api):
    """The second deployer's presign once took over the first's pending upload (the first's
    complete then answered 409), and any deployer listed every pending digest."""
    api = registry_api()
    body, digest = blob(5000)
    first, second = Uploader(api, app="one", as_="deployer"), Uploader(api, app="two", as_="other")
    mine = first.presign(digest, len(body)).json()
    theirs = second.presign(digest, len(body)).json()
    assert mine["storage_key"] != theirs["storage_key"]
    assert first.put(mine["upload_url"], body, mine["headers"]).status_code == 200
    done = first.complete(digest, len(body))
    assert done.status_code == 200 and done.json()["duplicate"] is False

    pending = api.get("/artifacts?status=pending", as_="deployer").json()["artifacts"]
    assert [a["app_name"] for a in pending] == []  # the first's upload is done
    listed_by_other = api.get("/artifacts?status=pending", as_="other").json()["artifacts"]
    assert [a["app_name"] for a in listed_by_other] == ["two"]
    assert api.get("/artifacts?status=pending", as_="reader").json()["artifacts"] == []
    admin_view = api.get("/artifacts?status=all", as_="admin").json()["artifacts"]
    assert sorted(a["status"] for a in admin_view) == ["pending", "stored"]


def test_a_multipart_part_larger_than_announced_is_refused(registry_api, store_kind):
    """A 48 MB part was once stored for a 10-byte upload until its complete."""
    api = registry_api({"AETHER_MULTIPART_PART_SIZE_BYTES": str(5 * MIB)})
    up = Uploader(api)
    whole = b"0123456789"
    digest = hashlib.sha256(whole).hexdigest()
    init = up.init_multipart(digest, len(whole))
    signed = up.sign_part(digest, init["upload_id"], 1).json()
    oversized = b"x" * (1 * MIB)
    put = up.put(signed["url"], oversized, signed["headers"])
    if store_kind == "local":
        assert put.status_code == 400  # the local store refuses it while it streams
        return
    etag = put.headers["ETag"]  # S3 takes it; the complete refuses and aborts the upload
    parts = [{"part_number": 1, "etag": etag}]
    done = up.complete_multipart(digest, len(whole), init["upload_id"], parts)
    assert done.status_code == 400 and "part 1" in done.json()["message"]
    listed = api.get(
        f"/artifacts/multipart/{init['upload_id']}/parts?digest={digest}", as_="deployer"
    )
    assert listed.status_code == 404


def test_another_tenant_cannot_touch_an_upload_in_progress(registry_api):
    api = registry_api()
    body, digest = blob(1000)
    init = Uploader(api, app="mine", as_="deployer").init_multipart(digest, len(body))
    parts = f"/artifacts/multipart/{init['upload_id']}/parts?digest={digest}"
    assert api.get(parts, as_="other").status_code == 403
    signed = Uploader(api, app="mine", as_="other").sign_part(digest, init["upload_id"], 1)
    assert signed.status_code == 403
    refused = api.delete(f"/artifacts/multipart/{init['upload_id']}?digest={digest}", as_="other")
    assert refused.status_code == 403


def test_a_digest_alone_downloads_nothing(registry_api):
    """Another tenant's code could be read by downloading its digest from the listing."""
    api = registry_api()
    body, digest = blob(1500)
    Uploader(api, app="victim", as_="deployer").upload(body)
    assert digest in [a["digest"] for a in api.get("/artifacts", as_="other").json()["artifacts"]]
    stolen = api.get(f"/artifacts/{digest}/download?format=json", as_="other")
    assert stolen.status_code == 404 and stolen.json()["code"] == "not_found"
    assert api.get(f"/artifacts/{digest}/download?format=json", as_="deployer").status_code == 200
    assert api.get(f"/artifacts/{digest}/download?format=json", as_="admin").status_code == 200

"""Registry policy: quotas, size limit, idempotency, signatures, concurrency, retention."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import artifacts_support
import pytest
from artifacts_support import Uploader, blob

from aether.pack.signing import generate_keypair, sign_digest
from aether.server.artifacts.gc import gc_loop
from aether.store import artifacts as artifact_store
from aether.store import rollouts
from release_rows import deploy_release

store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api


def test_size_limit_is_checked_at_presign_init_and_complete(make_api):
    api = make_api(env={"AETHER_MAX_ARTIFACT_SIZE_BYTES": "1000"})
    up = Uploader(api)
    refused = up.presign("ab" * 32, 1001)
    assert refused.status_code == 400 and refused.json()["code"] == "size_exceeded"
    init = api.post(
        "/artifacts/multipart/init",
        json={"app_name": "shop", "digest": "ab" * 32, "size_bytes": 5000},
        as_="deployer",
    )
    assert init.json()["code"] == "size_exceeded"
    assert up.complete("ab" * 32, 1001).json()["code"] == "size_exceeded"
    assert up.upload(blob(1000)[0]).status_code == 200


def test_quota_on_artifact_count(make_api):
    up = Uploader(make_api(env={"AETHER_MAX_ARTIFACTS_PER_APP": "1"}))
    assert up.upload(blob(100)[0]).status_code == 200
    refused = up.presign(blob(100)[1], 100)
    assert refused.status_code == 403 and refused.json()["code"] == "quota_exceeded"
    other_app = Uploader(up.api, app="other-app")
    assert other_app.upload(blob(100)[0]).status_code == 200


def test_quota_on_total_bytes_counts_at_complete_too(make_api):
    api = make_api(env={"AETHER_MAX_TOTAL_BYTES_PER_APP": "5000"})
    up = Uploader(api)
    first, second = blob(3000), blob(3000)
    presigned = up.presign(second[1], 3000).json()  # allowed: nothing stored yet
    assert up.upload(first[0]).status_code == 200
    up.put(presigned["upload_url"], second[0], presigned["headers"])
    refused = up.complete(second[1], 3000)
    assert refused.status_code == 403 and refused.json()["code"] == "quota_exceeded"
    assert api.head(f"/artifacts/{second[1]}").status_code == 404


def test_idempotency_key_replays_and_conflicts(api):
    up = Uploader(api)
    first_body, first = blob(500)
    second_body, second = blob(500)
    answer = up.upload(first_body, idempotency_key="deploy-42").json()
    replay = up.complete(first, len(first_body), idempotency_key="deploy-42")
    assert replay.status_code == 200 and replay.json() == answer
    conflict = up.upload(second_body, idempotency_key="deploy-42")
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    assert up.upload(second_body, idempotency_key="deploy-43").status_code == 200


def test_an_idempotency_key_first_used_on_a_duplicate_still_conflicts(api):
    up = Uploader(api)
    body, digest = blob(210)
    assert up.upload(body).status_code == 200
    duplicate = up.complete(digest, len(body), idempotency_key="retry-7")
    assert duplicate.status_code == 200 and duplicate.json()["duplicate"] is True
    replay = up.complete(digest, len(body), idempotency_key="retry-7")
    assert replay.json() == duplicate.json()
    other_body, _ = blob(211)
    conflict = up.upload(other_body, idempotency_key="retry-7")
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"


def test_signature_verified_unverified_and_malformed(api):
    up = Uploader(api)
    api.post("/apps", json={"name": "shop"}, as_="deployer")
    seed, public = generate_keypair()
    added = api.post("/apps/shop/public-keys", json={"public_key_hex": public}, as_="deployer")
    assert added.status_code == 201, added.text

    body, digest = blob(700)
    signed = up.upload(body, signature=sign_digest(seed, digest))
    assert signed.status_code == 200 and signed.json()["verified"] is True
    assert api.get(f"/artifacts/{digest}").json()["signature"] == sign_digest(seed, digest)

    other_seed, _ = generate_keypair()
    body2, digest2 = blob(700)
    foreign = up.upload(body2, signature=sign_digest(other_seed, digest2))
    assert foreign.status_code == 200 and foreign.json()["verified"] is False
    # a later complete with a valid signature verifies the stored artifact
    late = up.complete(digest2, len(body2), signature=sign_digest(seed, digest2))
    assert late.json()["duplicate"] is True and late.json()["verified"] is True

    malformed = up.complete(digest, len(body), signature="xyz")
    assert malformed.status_code == 400 and malformed.json()["code"] == "bad_request"


def test_concurrent_completes_store_one_row(registry_api):
    api = registry_api()
    up = Uploader(api)
    body, digest = blob(20_000)
    presigned = up.presign(digest, len(body)).json()
    assert up.put(presigned["upload_url"], body, presigned["headers"]).status_code == 200
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: up.complete(digest, len(body)), range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True]
    assert len({a.json()["artifact_id"] for a in answers}) == 1
    events = api.run(artifact_store.list_events, digest=digest)
    assert [e["event"] for e in events] == ["stored"]


def test_concurrent_completes_in_one_event_loop(api):
    """asyncio.gather on the registry itself: one winner, however the coroutines interleave."""
    from aether.server.artifacts import registry
    from aether.store import apps as app_store

    up = Uploader(api)
    body, digest = blob(9000)
    presigned = up.presign(digest, len(body)).json()
    up.put(presigned["upload_url"], body, presigned["headers"])

    async def race(db):
        app = await app_store.get_app(db, "shop")
        completion = registry.Completion(digest, len(body))
        return await asyncio.gather(
            *(registry.complete(api.state, None, app, completion) for _ in range(5))
        )

    answers = api.run(race)
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 4


async def _deploy(db, app_id: str, artifact_id: str) -> str:
    """A deployment of the artifact, rolled out as the worker does (→ running; the app's
    older running deployment becomes superseded)."""
    digest = await db.fetch_value(
        "SELECT digest FROM artifacts WHERE id = :id", {"id": artifact_id}
    )
    row = (await deploy_release(db, app_id, digest)).deployment
    await rollouts.mark_deploying(db, row["id"])
    await rollouts.mark_running(db, row["id"], None)
    return row["id"]


def _retaining_api(make_api, keep: int):
    """An API that runs the artifact GC loop, which applies retention after each complete."""
    return make_api(env={"AETHER_RETAIN_LATEST_PER_APP": str(keep)}, background=[gc_loop])


def _upload_and_settle(up: Uploader, body: bytes) -> dict:
    """Upload, then wait until the GC loop has applied retention for it."""
    answer = up.upload(body).json()
    deadline = time.monotonic() + 15
    while not up.api.state.artifact_gc.caught_up():
        assert time.monotonic() < deadline, "the artifact GC loop did not apply retention"
        time.sleep(0.01)  # polling with a deadline, not synchronising on a sleep
    return answer


def test_retention_keeps_newest_and_deployed_and_deletes_objects(make_api):
    api = _retaining_api(make_api, 2)
    up = Uploader(api)
    uploads = [blob(100 + n) for n in range(5)]

    def store(n):
        answer = _upload_and_settle(up, uploads[n][0])
        return answer["artifact_id"], answer["storage_key"]

    a1, a2 = store(0), store(1)
    app_id = api.get("/apps/shop").json()["id"]
    d1 = api.run(_deploy, app_id, a1[0])
    d2 = api.run(_deploy, app_id, a2[0])  # d1 superseded
    store(2)
    a4 = store(3)  # a1 (previous successful) and a2 (running) are protected
    assert len(api.get("/artifacts?limit=10").json()["artifacts"]) == 4
    api.run(_deploy, app_id, a4[0])  # d2 superseded
    store(4)  # now a2 is the previous successful one; a3 and a1 go

    kept = {a["digest"] for a in api.get("/artifacts?limit=10").json()["artifacts"]}
    assert kept == {uploads[n][1] for n in (1, 3, 4)}
    for gone in (0, 2):
        key = f"artifacts/shop/{uploads[gone][1]}/app.tar.zst"
        assert api.client.portal.call(api.state.blobs.head, key) is None
        events = api.run(artifact_store.list_events, digest=uploads[gone][1])
        assert [e["event"] for e in events] == ["stored", "retention_delete"]
    assert api.get(f"/deployments/{d1}").status_code == 404
    assert api.get(f"/deployments/{d2}").json()["status"] == "superseded"


@pytest.mark.parametrize("limit", ["0", "abc", "101"])
def test_listing_rejects_bad_limits(api, limit):
    assert api.get(f"/artifacts?limit={limit}").status_code == 400


def test_listing_is_newest_first_with_cursor(api):
    up = Uploader(api)
    digests = []
    for _ in range(3):
        body, digest = blob(64)
        up.upload(body)
        digests.append(digest)
    page = api.get("/artifacts?limit=2", as_="reader").json()
    assert [a["digest"] for a in page["artifacts"]] == digests[:-3:-1]
    rest = api.get(f"/artifacts?limit=2&cursor={page['next_cursor']}", as_="reader").json()
    assert [a["digest"] for a in rest["artifacts"]] == digests[:1]
    assert rest["next_cursor"] is None
    assert api.get("/artifacts?app=nope").json()["artifacts"] == []
    up.presign(blob(10)[1], 10)
    pending = api.get("/artifacts?status=pending").json()["artifacts"]
    assert len(pending) == 1 and pending[0]["status"] == "pending"


def test_retention_keeps_an_artifact_another_app_is_running(make_api):
    api = _retaining_api(make_api, 1)
    up = Uploader(api)
    first_body, first_digest = blob(200)
    first_id = _upload_and_settle(up, first_body)["artifact_id"]
    prod = api.post("/apps", json={"name": "shop-prod"}, as_="deployer").json()
    api.run(_deploy, prod["id"], first_id)
    second = _upload_and_settle(
        up, blob(201)[0]
    )  # shop keeps only its newest, but prod runs the first
    kept = {a["digest"] for a in api.get("/artifacts?limit=10").json()["artifacts"]}
    assert kept == {first_digest, second["digest"]}


def test_one_apps_retention_never_deletes_bytes_another_app_holds(make_api):
    """Retention lets go of the app's own reference; bytes another tenant uploaded too pass
    to it and stay deployable there."""
    api = _retaining_api(make_api, 1)
    up, other = Uploader(api), Uploader(api, app="theirs", as_="other")
    shared_body, shared = blob(300)
    _upload_and_settle(up, shared_body)
    assert other.upload(shared_body).json()["duplicate"] is True
    _upload_and_settle(up, blob(301)[0])  # shop keeps only its newest
    stored = api.get(f"/artifacts/{shared}").json()
    assert stored["app_name"] == "theirs"
    assert api.client.portal.call(api.state.blobs.head, stored["storage_key"]) is not None
    assert api.head(f"/artifacts/{shared}?app=shop", as_="deployer").status_code == 404
    deployed = api.post(
        "/deployments", json={"app_name": "theirs", "artifact_digest": shared}, as_="other"
    )
    assert deployed.status_code == 201
    events = api.run(artifact_store.list_events, digest=shared)
    assert [e["event"] for e in events] == ["stored", "referenced", "retention_release"]

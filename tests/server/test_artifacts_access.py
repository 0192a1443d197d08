"""Downloads (incl. pull tokens), the local /blobs routes, the legacy upload, pending GC and
the registry's metrics."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import artifacts_support
import httpx
from artifacts_support import PUBLIC_URL, Uploader, blob
from click.testing import CliRunner

from aether.server.artifacts.gc import collect_pending
from aether.store import artifacts as artifact_store
from aether.store import tokens as token_store
from release_rows import deploy_release

store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api


def _fetch(api, url):
    if url.startswith(PUBLIC_URL):
        return api.client.get(url)
    return httpx.get(url)


def test_download_redirects_to_a_presigned_url(registry_api):
    api = registry_api()
    body, digest = blob(30_000)
    Uploader(api).upload(body)
    redirect = api.get(f"/artifacts/{digest}/download", as_="reader", follow_redirects=False)
    assert redirect.status_code == 302
    assert _fetch(api, redirect.headers["location"]).content == body
    as_json = api.get(f"/artifacts/{digest}/download?format=json").json()
    assert as_json["expires_at"].endswith("Z")
    assert _fetch(api, as_json["url"]).content == body
    missing = api.get(f"/artifacts/{'0' * 64}/download")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_pull_token_reads_only_its_deployments_artifact(api):
    up = Uploader(api)
    mine_body, mine = blob(300)
    other_body, other = blob(300)
    up.upload(mine_body)
    up.upload(other_body)
    app_id = api.get("/apps/shop").json()["id"]

    async def pull_token(db):
        row = (await deploy_release(db, app_id, mine)).deployment
        return await token_store.create_pull_token(db, deployment_id=row["id"], ttl_secs=60)

    token = api.run(pull_token)
    auth = {"Authorization": f"Bearer {token}"}
    own = api.client.get(f"/artifacts/{mine}/download?format=json", headers=auth)
    assert own.status_code == 200 and _fetch(api, own.json()["url"]).content == mine_body
    foreign = api.client.get(f"/artifacts/{other}/download", headers=auth)
    assert foreign.status_code == 403 and foreign.json()["code"] == "forbidden"
    assert api.client.get("/artifacts", headers=auth).status_code == 403
    assert api.client.head(f"/artifacts/{mine}", headers=auth).status_code == 403


def test_local_blob_urls_need_no_token_but_a_valid_signature(api):
    body, digest = blob(1000)
    Uploader(api).upload(body)
    url = api.get(f"/artifacts/{digest}/download?format=json").json()["url"]
    assert api.client.get(url).content == body  # no Authorization header
    for bad in (url.replace("sig=", "sig=f"), url.replace("expires=", "expires=1")):
        refused = api.client.get(bad)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    key = f"artifacts/shop/{digest}/app.tar.zst"
    expired = api.client.portal.call(lambda: api.state.blobs.presign_get(key, expires_secs=-1))
    refused = api.client.get(expired)
    assert refused.status_code == 403 and "expired" in refused.json()["message"]


def test_local_put_with_wrong_bytes_is_refused_at_the_url(api):
    up = Uploader(api)
    body, digest = blob(2000)
    presigned = up.presign(digest, len(body)).json()
    refused = up.put(presigned["upload_url"], bytes(len(body)))
    assert refused.status_code == 400 and refused.json()["code"] == "digest_mismatch"
    longer = up.put(presigned["upload_url"], body + b"x")
    assert longer.status_code == 400
    assert api.head(f"/artifacts/{digest}").status_code == 404


async def _asgi_put_then_disconnect(app, url: str, first_chunk: bytes) -> list[dict]:
    parts = urlsplit(url)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8080"), (b"content-length", b"999999")],
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
    }
    messages = iter(
        [
            {"type": "http.request", "body": first_chunk, "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict] = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_killed_put_leaves_nothing_and_gc_removes_the_pending_row(api, tmp_path):
    up = Uploader(api)
    body, digest = blob(50_000)
    presigned = up.presign(digest, len(body)).json()
    api.client.portal.call(
        _asgi_put_then_disconnect, api.client.app, presigned["upload_url"], body[:10_000]
    )

    blobs_dir = tmp_path / "data" / "blobs"
    assert not (blobs_dir / "objects" / presigned["storage_key"]).exists()
    assert list((blobs_dir / "tmp").iterdir()) == []
    assert api.get(f"/artifacts/{digest}").json()["status"] == "pending"

    async def gc(db):
        return await collect_pending(db, api.state.blobs, ttl_secs=0)

    report = api.run(gc)
    assert report.deleted_pending == 1
    assert api.get(f"/artifacts/{digest}").status_code == 404
    events = api.run(artifact_store.list_events, digest=digest)
    assert [e["event"] for e in events] == ["pending_gc"]


def test_gc_aborts_stale_multipart_uploads_and_keeps_fresh_ones(registry_api):
    api = registry_api()
    _, digest, upload_id = Uploader(api).open_with_one_part()

    async def gc(db, ttl):
        return await collect_pending(db, api.state.blobs, ttl_secs=ttl)

    assert api.run(gc, 3600).deleted_pending == 0
    assert api.get(f"/artifacts/{digest}").status_code == 200
    assert api.run(gc, 0).deleted_pending == 1
    parts = api.get(f"/artifacts/multipart/{upload_id}/parts?digest={digest}")
    assert parts.status_code == 404


def test_aether_gc_command(database_url, tmp_path):
    from aether.cli import cli

    env = {"DATABASE_URL": database_url, "AETHER_DATA_DIR": str(tmp_path / "gc")}
    result = CliRunner().invoke(cli, ["gc", "--ttl", "0", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted_pending": 0, "purged_uploads": 0, "ttl_secs": 0}


def _legacy(api, body, headers, app="shop"):
    return api.post(
        "/artifacts",
        files={"artifact": ("app.tar.gz", body, "application/octet-stream")},
        data={"app_name": app},
        headers=headers,
        as_="deployer",
    )


def test_legacy_upload(registry_api):
    api = registry_api()
    body, digest = blob(40_000, seed=b"\x1f\x8b" + bytes(14))
    first = _legacy(api, body, {"X-Aether-Artifact-Digest": digest})
    assert first.status_code == 200, first.text
    assert first.headers["X-Aether-Deprecated"] == "true"
    answer = first.json()
    assert answer["digest"] == digest and answer["duplicate"] is False
    assert answer["app_linked"] is False and answer["verified"] is False
    assert answer["artifact_url"].endswith(f"/artifacts/{digest}/download")
    stored = api.get(f"/artifacts/{digest}").json()
    assert stored["compression"] == "gzip" and stored["storage_key"].endswith(".tar.gz")
    again = _legacy(api, body, {"X-Aether-Artifact-Digest": digest.upper()}).json()
    assert again["duplicate"] is True and again["app_linked"] is True


def test_legacy_upload_errors(api):
    body, digest = blob(1000)
    cases = [
        ({}, "missing_digest"),
        ({"X-Aether-Artifact-Digest": "abc"}, "invalid_digest"),
        ({"X-Aether-Artifact-Digest": hashlib.sha256(b"other").hexdigest()}, "digest_mismatch"),
    ]
    for headers, code in cases:
        answer = _legacy(api, body, headers)
        assert answer.status_code == 400 and answer.json()["code"] == code
    no_file = api.post(
        "/artifacts", data={"app_name": "shop"}, headers={"X-Aether-Artifact-Digest": digest}
    )
    assert no_file.status_code == 400 and no_file.json()["code"] == "bad_request"


def test_metrics_carry_the_seed_names_without_app_labels(api):
    Uploader(api).upload(blob(100)[0])
    text = api.get("/metrics", as_=None).text
    for name in (
        "artifact_presign_requests_total",
        "artifact_complete_duration_seconds",
        "artifacts_total",
        "artifact_uploads_in_progress",
        "artifact_multipart_inits_total",
        "artifact_quota_exceeded_total",
        "artifact_digest_mismatch_total",
        "artifact_pending_gc_runs_total",
    ):
        assert name in text
    artifact_lines = [line for line in text.splitlines() if line.startswith("artifact")]
    assert not any("app" in line.split("{", 1)[-1] for line in artifact_lines if "{" in line)


def test_gc_loop_runs_as_a_background_task(make_api):
    import time

    from aether.server.artifacts.gc import gc_loop

    api = make_api(
        env={"AETHER_PENDING_TTL_SECS": "0", "AETHER_PENDING_GC_INTERVAL_SECS": "1"},
        background=[gc_loop],
    )
    _, digest = blob(100)
    assert Uploader(api).presign(digest, 100).status_code == 200
    deadline = time.monotonic() + 15
    while api.get(f"/artifacts/{digest}").status_code != 404:
        assert time.monotonic() < deadline, "the background GC did not remove the pending row"
        time.sleep(0.05)  # polling with a deadline, not synchronising on a sleep
    events = api.run(artifact_store.list_events, digest=digest)
    assert [e["event"] for e in events] == ["pending_gc"]


def test_legacy_uploads_beyond_the_limit_wait_for_a_slot(make_api):
    import threading
    import time

    from aether.server.artifacts import metrics as artifact_metrics

    api = make_api(env={"AETHER_MAX_CONCURRENT_UPLOADS": "1"})
    first, first_digest = blob(1000)
    assert _legacy(api, first, {"X-Aether-Artifact-Digest": first_digest}).status_code == 200
    slots = api.client.app.state.artifact_upload_slots
    api.client.portal.call(slots.acquire)  # the only slot is now taken
    body, digest = blob(1000)
    answers = []
    waiting = threading.Thread(
        target=lambda: answers.append(_legacy(api, body, {"X-Aether-Artifact-Digest": digest}))
    )
    baseline = artifact_metrics.UPLOADS_IN_PROGRESS._value.get()
    waiting.start()
    deadline = time.monotonic() + 10
    while artifact_metrics.UPLOADS_IN_PROGRESS._value.get() < baseline + 1:
        assert time.monotonic() < deadline, "the second upload never started waiting"
        time.sleep(0.01)
    assert answers == [] and api.head(f"/artifacts/{digest}").status_code == 404
    api.client.portal.call(slots.release)
    waiting.join(timeout=30)
    assert answers[0].status_code == 200 and answers[0].json()["duplicate"] is False

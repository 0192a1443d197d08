"""Bad input, database failures and logging: always the envelope, never a traceback."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"name": 5}', "must be a string"),
        (b'{"name": "ok", "extra": 1}', "unknown field 'extra'"),
        (b"{}", "missing required field 'name'"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"name": NaN}', "must be a string"),
    ],
)
def test_bad_bodies_are_bad_requests(api, body, fragment):
    response = api.post("/apps", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert fragment in response.json()["message"]


def test_booleans_are_not_integers(api):
    response = api.post("/tokens", json={"name": "x", "role": "reader", "expires_in_secs": True})
    assert response.status_code == 400
    assert "must be an integer or null, not a boolean" in response.json()["message"]


def test_oversized_bodies_are_refused_with_and_without_content_length(make_api):
    api = make_api(env={"AETHER_MAX_BODY_BYTES": "1024"})
    big = b'{"name": "' + b"a" * 2000 + b'"}'
    declared = api.post("/apps", content=big)
    assert declared.status_code == 413
    assert declared.json()["code"] == "payload_too_large"
    streamed = api.post("/apps", content=iter([big[:600], big[600:]]))
    assert streamed.status_code == 413


def test_database_errors_are_internal_with_a_request_id(api, caplog):
    api.post("/apps", json={"name": "shop"})
    api.run(lambda db: db.execute("DROP TABLE public_keys"))
    with caplog.at_level(logging.ERROR, logger="aether.server"):
        response = api.get("/apps/shop/public-keys", headers={"X-Request-Id": "req-500"})
    assert response.status_code == 500
    assert response.json()["code"] == "internal"
    assert "req-500" in response.json()["message"]
    assert "public_keys" not in response.json()["message"]  # details stay in the log
    assert "req-500" in caplog.text and "public_keys" in caplog.text


def test_access_log_has_the_request_id_and_never_the_token(api, caplog):
    with caplog.at_level(logging.INFO, logger="aether.access"):
        api.get("/whoami", headers={"X-Request-Id": "req-log-1"})
        api.get("/whoami", as_=None, headers={"Authorization": "Bearer ae_wrong_secret_value"})
    records = [r for r in caplog.records if r.name == "aether.access"]
    assert any(r.fields["request_id"] == "req-log-1" for r in records)
    assert any(r.fields["status"] == 401 for r in records)
    assert api.tokens["admin"] not in caplog.text
    assert "ae_wrong_secret_value" not in caplog.text


def test_a_broken_request_id_is_replaced(api):
    response = api.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert response.headers["x-request-id"] != "bad id with spaces"


def _set_connections(admin_url: str, dbname: str, allowed: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_readyz_is_503_while_postgres_refuses_and_recovers_without_restart(make_api, database_url):
    api = make_api()
    admin_url, dbname = database_url.rsplit("/", 1)[0] + "/postgres", database_url.rsplit("/", 1)[1]
    assert api.get("/readyz", as_=None).status_code == 200
    _set_connections(admin_url, dbname, allowed=False)
    try:
        down = api.get("/readyz", as_=None)
        assert down.status_code == 503
        assert down.json()["code"] == "service_unavailable"
        during = api.get("/apps")
        assert during.status_code == 503
    finally:
        _set_connections(admin_url, dbname, allowed=True)
    deadline = time.monotonic() + 60
    while api.get("/readyz", as_=None).status_code != 200:
        assert time.monotonic() < deadline, "readyz did not recover"
        time.sleep(0.2)
    assert api.get("/apps").status_code == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/blobs/artifacts/x/app.tar.zst?expires=1&sig=%C3%A9%F0%9F%92%A5"),
        ("PUT", "/blobs/artifacts/x/app.tar.zst?expires=%F4%85%8E%84&sig=%F1%84%8A%81"),
    ],
)
def test_a_non_ascii_signature_is_forbidden_not_a_crash(api, method, path):
    response = api.request(method, path, as_=None, content=b"x")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


@pytest.mark.parametrize("size", [2**64, 2**63 - 1, 6 * 2**40])
def test_absurd_sizes_are_bad_requests(api, size):
    body = {"app_name": "shop", "digest": "ab" * 32, "size_bytes": size}
    for path in ("/artifacts/multipart/init", "/artifacts/presign", "/artifacts/complete"):
        response = api.post(path, json=body)
        assert response.status_code == 400, (path, response.text)


@pytest.mark.parametrize("value", ["²", "99999999999999999999999", "-1", "1e3"])
def test_integer_query_parameters_are_checked(api, value):
    api.post("/apps", json={"name": "shop"})
    for path in (
        f"/apps/shop/deployments?limit={value}",
        f"/artifacts?limit={value}",
        f"/deployments/00000000-0000-0000-0000-000000000000/events?after={value}",
    ):
        response = api.get(path)
        assert response.status_code in (400, 404), (path, response.text)
        assert response.json()["code"] in ("bad_request", "not_found")


@pytest.mark.parametrize(
    "body",
    [
        rb'{"name": "a\u0000b", "role": "reader"}',
        rb'{"name": "\ud830", "role": "reader"}',
        rb'{"app_name": "x", "artifact_digest": "' + b"ab" * 32 + rb'", "env": {"K": "\u0000"}}',
    ],
)
def test_text_no_database_can_store_is_a_bad_request(api, body):
    path = "/deployments" if b"env" in body else "/tokens"
    response = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"


@pytest.mark.parametrize("path", ["/artifacts?app=a%00b", "/apps/a%00b", "/apps?x=%00"])
def test_a_nul_in_the_url_is_a_bad_request(api, path):
    response = api.get(path)
    assert response.status_code == 400 and response.json()["code"] == "bad_request"

"""Tokens over the API: whoami, create, rotate, revoke, expiry; only hashes are stored."""

from __future__ import annotations

from aether.store.tokens import hash_token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_whoami_names_the_caller(api):
    body = api.get("/whoami", as_="reader").json()
    assert body["name"] == "reader" and body["role"] == "reader"
    assert body["token_id"].startswith("bootstrap-")


def test_admin_creates_a_token_that_works_and_is_stored_hashed(api):
    response = api.post(
        "/tokens", json={"name": "ci", "role": "deployer", "email": "ci@example.com"}
    )
    assert response.status_code == 201
    issued = response.json()
    assert issued["role"] == "deployer" and issued["expires_at"] is None
    me = api.client.get("/whoami", headers=bearer(issued["token"])).json()
    assert me["token_id"] == issued["token_id"] and me["role"] == "deployer"
    rows = api.run(lambda db: db.fetch_all("SELECT token_hash FROM api_tokens"))
    hashes = {row["token_hash"] for row in rows}
    assert hash_token(issued["token"]) in hashes
    assert issued["token"] not in hashes


def test_only_admin_creates_tokens_and_input_is_checked(api):
    assert (
        api.post("/tokens", json={"name": "x", "role": "reader"}, as_="deployer").status_code == 403
    )
    assert api.post("/tokens", json={"name": "x", "role": "root"}).status_code == 400
    assert (
        api.post("/tokens", json={"name": "x", "role": "reader", "expires_in_secs": 0}).status_code
        == 400
    )


def test_rotate_replaces_the_callers_token_at_once(api):
    old = api.tokens["deployer"]
    response = api.client.post("/tokens/rotate", headers=bearer(old))
    assert response.status_code == 200
    new = response.json()["token"]
    assert new != old
    assert api.client.get("/whoami", headers=bearer(old)).status_code == 401
    assert api.client.get("/whoami", headers=bearer(new)).json()["name"] == "deployer"


def test_revoke_own_token_or_any_as_admin(api):
    issued = api.post("/tokens", json={"name": "tmp", "role": "reader"}).json()
    other_id = api.get("/whoami", as_="other").json()["token_id"]
    assert api.delete(f"/tokens/{other_id}", as_="deployer").status_code == 403
    own = api.client.delete(f"/tokens/{issued['token_id']}", headers=bearer(issued["token"]))
    assert own.status_code == 204
    assert api.client.get("/whoami", headers=bearer(issued["token"])).status_code == 401
    assert api.delete(f"/tokens/{other_id}", as_="admin").status_code == 204
    assert api.get("/whoami", as_="other").status_code == 401
    assert api.delete(f"/tokens/{other_id}").status_code == 404


def test_expired_token_is_refused(make_api):
    api = make_api(env={"AETHER_AUTH_CACHE_SECS": "0"})  # every request asks the database
    issued = api.post(
        "/tokens", json={"name": "short", "role": "reader", "expires_in_secs": 60}
    ).json()
    assert api.client.get("/whoami", headers=bearer(issued["token"])).status_code == 200
    api.run(
        lambda db: db.execute(
            "UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = :id",
            {"id": issued["token_id"]},
        )
    )
    response = api.client.get("/whoami", headers=bearer(issued["token"]))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_use_records_last_used_at(api):
    issued = api.post("/tokens", json={"name": "seen", "role": "reader"}).json()
    api.client.get("/whoami", headers=bearer(issued["token"]))
    listed = {t["id"]: t for t in api.get("/tokens").json()["tokens"]}
    assert listed[issued["token_id"]]["last_used_at"] is not None
    assert "token" not in listed[issued["token_id"]]

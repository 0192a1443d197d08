"""Per-app public keys: validation, listing, deactivation, ownership."""

from __future__ import annotations

import pytest

from aether.pack.signing import generate_keypair

# y = 2 does not decode to a point on Ed25519 (no square root for x), though OpenSSL takes it.
NOT_ON_CURVE = (2).to_bytes(32, "little").hex()


@pytest.fixture
def shop(api):
    return api.post("/apps", json={"name": "shop"}, as_="deployer").json()


def test_register_list_and_deactivate_a_key(api, shop):
    _, public = generate_keypair()
    created = api.post("/apps/shop/public-keys", json={"public_key_hex": public}, as_="deployer")
    assert created.status_code == 201
    assert created.json()["app_id"] == shop["id"] and created.json()["active"] is True
    listed = api.get("/apps/shop/public-keys", as_="reader").json()["public_keys"]
    assert [k["public_key_hex"] for k in listed] == [public]
    gone = api.delete(f"/apps/shop/public-keys/{public}", as_="deployer")
    assert gone.status_code == 200 and gone.json()["active"] is False
    again = api.post("/apps/shop/public-keys", json={"public_key_hex": public}, as_="deployer")
    assert again.status_code == 200 and again.json()["active"] is True


@pytest.mark.parametrize(
    "value", ["zz" * 32, "ab" * 31, "ab" * 33, NOT_ON_CURVE, "", "ab" * 32 + " x"]
)
def test_invalid_keys_are_bad_requests(api, shop, value):
    response = api.post("/apps/shop/public-keys", json={"public_key_hex": value})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_unknown_key_and_other_owner(api, shop):
    _, public = generate_keypair()
    assert api.delete(f"/apps/shop/public-keys/{public}").status_code == 404
    response = api.post("/apps/shop/public-keys", json={"public_key_hex": public}, as_="other")
    assert response.status_code == 403

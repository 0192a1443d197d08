"""``/apps``: names, ownership, listing with the current deployment, deletion."""

from __future__ import annotations

import pytest


def test_create_app_makes_the_caller_owner(api):
    response = api.post("/apps", json={"name": "shop"}, as_="deployer")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "shop"
    assert body["owner"] == api.user_id("deployer")
    assert body["url"] == "http://shop.localhost:8080/"
    assert "code" not in body


@pytest.mark.parametrize("name", ["Shop", "-shop", "shop-", "a" * 64, "sh_op", "", "shöp"])
def test_invalid_names_are_bad_requests(api, name):
    response = api.post("/apps", json={"name": name})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert "DNS-1123" in response.json()["message"]


def test_a_63_character_name_is_accepted(api):
    assert api.post("/apps", json={"name": "a" * 63}).status_code == 201


def test_duplicate_name_is_a_conflict(api):
    assert api.post("/apps", json={"name": "shop"}).status_code == 201
    response = api.post("/apps", json={"name": "shop"}, as_="other")
    assert response.status_code == 409
    assert response.json() == {"code": "conflict", "message": "application name exists: 'shop'"}


def test_list_and_show_apps_with_their_current_deployment(api):
    api.post("/apps", json={"name": "b-app"})
    api.post("/apps", json={"name": "a-app"})
    listed = api.get("/apps", as_="reader").json()["apps"]
    assert [a["name"] for a in listed] == ["a-app", "b-app"]
    assert listed[0]["current"] is None
    shown = api.get("/apps/a-app", as_="reader").json()
    assert shown["name"] == "a-app" and shown["current"] is None


def test_unknown_app_is_not_found(api):
    response = api.get("/apps/ghost")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_only_admin_or_owner_deletes(api):
    api.post("/apps", json={"name": "shop"}, as_="deployer")
    assert api.delete("/apps/shop", as_="other").status_code == 403
    assert api.delete("/apps/shop", as_="reader").status_code == 403
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    assert api.get("/apps/shop").status_code == 404
    api.post("/apps", json={"name": "shop"}, as_="deployer")
    assert api.delete("/apps/shop", as_="admin").status_code == 204


def test_reader_cannot_create_apps(api):
    response = api.post("/apps", json={"name": "shop"}, as_="reader")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"

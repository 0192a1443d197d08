"""Who may call what: every route without a token, with a bad token, and per role.

The 401 checks run over every registered route (including other components' routes), so
a new route cannot slip in unauthenticated. The role table covers the routes of this module
set: reader, a deployer on someone else's app ("other"), and admin.
"""

from __future__ import annotations

import re

import pytest
from seeding import insert_artifact
from starlette.routing import Route

from aether.pack.signing import generate_keypair
from aether.server.auth import is_open_path
from aether.server.routes import ROUTES

ALLOWED = "allowed"


def _protected_routes() -> list[tuple[str, str]]:
    found = []
    for route in ROUTES:
        if not isinstance(route, Route) or is_open_path(route.path):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, route.path))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x" * 64, path)


def test_every_protected_route_needs_a_valid_token(api):
    bad_headers = (
        {},
        {"Authorization": "Bearer ae_not_a_real_token"},
        {"Authorization": "Basic eDp5"},
        {"Authorization": "Bearer"},
    )
    routes = _protected_routes()
    assert len(routes) > 15
    for method, path in routes:
        for headers in bad_headers:
            response = api.client.request(method, _concrete(path), headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.fixture
def world(api):
    """The deployer owns 'shop' with a deployment, a key and a spare token; 'victim' is an
    app to delete."""
    shop = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    api.post("/apps", json={"name": "victim"}, as_="deployer")
    artifact = api.run(insert_artifact, shop["id"])
    deployment = api.post(
        "/deployments", json={"app_name": "shop", "artifact_digest": artifact["digest"]}
    ).json()
    _, key = generate_keypair()
    api.post("/apps/shop/public-keys", json={"public_key_hex": key}, as_="deployer")
    spare = api.post("/tokens", json={"name": "spare", "role": "deployer", "email": "deployer"})
    return {
        "digest": artifact["digest"],
        "deployment": deployment["id"],
        "key": key,
        "spare": spare.json()["token_id"],
    }


# (method, path, json body, reader, other deployer, admin)
MATRIX = [
    ("GET", "/config", None, ALLOWED, ALLOWED, ALLOWED),
    ("GET", "/whoami", None, ALLOWED, ALLOWED, ALLOWED),
    ("POST", "/apps", {"name": "fresh-{role}"}, 403, 201, 201),
    ("GET", "/apps", None, ALLOWED, ALLOWED, ALLOWED),
    ("GET", "/apps/shop", None, ALLOWED, ALLOWED, ALLOWED),
    ("DELETE", "/apps/victim", None, 403, 403, 204),
    ("POST", "/deployments", {"app_name": "shop", "artifact_digest": "{digest}"}, 403, 403, 200),
    ("GET", "/deployments/{deployment}", None, ALLOWED, ALLOWED, ALLOWED),
    ("GET", "/deployments/{deployment}/events", None, ALLOWED, ALLOWED, ALLOWED),
    ("GET", "/apps/shop/deployments", None, ALLOWED, ALLOWED, ALLOWED),
    ("POST", "/apps/shop/rollback", {}, 403, 403, 400),
    ("GET", "/apps/shop/config", None, ALLOWED, ALLOWED, ALLOWED),
    ("GET", "/apps/shop/config?reveal=true", None, 403, 403, ALLOWED),
    ("PATCH", "/apps/shop/config", {"set": {"A": "1"}}, 403, 403, 200),
    ("GET", "/apps/shop/releases", None, ALLOWED, ALLOWED, ALLOWED),
    ("GET", "/apps/shop/releases/v1", None, ALLOWED, ALLOWED, ALLOWED),
    ("POST", "/apps/shop/scale", {"replicas": 2}, 403, 403, 201),
    ("GET", "/apps/shop/status", None, ALLOWED, ALLOWED, ALLOWED),
    ("POST", "/apps/shop/restart", {}, 403, 403, 409),
    ("POST", "/apps/shop/public-keys", {"public_key_hex": "{key}"}, 403, 403, 200),
    ("GET", "/apps/shop/public-keys", None, ALLOWED, ALLOWED, ALLOWED),
    ("DELETE", "/apps/shop/public-keys/{key}", None, 403, 403, 200),
    ("POST", "/tokens", {"name": "n", "role": "reader"}, 403, 403, 201),
    ("GET", "/tokens", None, 403, 403, ALLOWED),
    ("DELETE", "/tokens/{spare}", None, 403, 403, 204),
]


def _fill(value, world):
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


@pytest.mark.parametrize("method, path, body, reader, other, admin", MATRIX)
def test_roles_and_ownership(api, world, method, path, body, reader, other, admin):
    for role, expected in (("reader", reader), ("other", other), ("admin", admin)):
        filled = {**world, "role": role}
        response = api.request(method, _fill(path, filled), json=_fill(body, filled), as_=role)
        if expected == ALLOWED:
            assert response.status_code < 300, (role, response.status_code, response.text)
        else:
            assert response.status_code == expected, (role, response.text)
        if response.status_code == 403:
            assert response.json()["code"] == "forbidden"


def test_rotate_is_open_to_every_role(api):
    for role in ("reader", "other", "admin"):
        assert api.post("/tokens/rotate", as_=role).status_code == 200

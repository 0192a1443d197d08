"""The OpenAPI document (valid 3.1, covers every route) and the Prometheus metrics."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from aether.server.routes import ROUTES

# The document does not depend on the metadata backend: build it once.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


@sqlite_only
def test_openapi_document_is_valid_3_1_with_global_bearer_auth(api):
    response = api.get("/openapi.json", as_=None)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["security"] == [{"bearer_auth": []}]
    assert document["components"]["securitySchemes"]["bearer_auth"]["scheme"] == "bearer"


@sqlite_only
def test_every_registered_route_is_documented(api):
    paths = api.get("/openapi.json", as_=None).json()["paths"]
    missing = []
    for route in ROUTES:
        if not isinstance(route, Route):
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            # OpenAPI templates have no converters: /blobs/{key:path} is /blobs/{key}
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {route.path}")
    assert missing == []


@sqlite_only
def test_open_routes_are_marked_without_security(api):
    paths = api.get("/openapi.json", as_=None).json()["paths"]
    assert paths["/readyz"]["get"]["security"] == []
    assert "security" not in paths["/apps"]["post"]


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and _labels(line) == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _labels(line: str) -> str:
    inside = line[line.index("{") + 1 : line.rindex("}")]
    return ",".join(sorted(inside.split(",")))


def test_metrics_count_requests_by_route_template(api):
    api.post("/apps", json={"name": "shop"})
    labels = {"method": "GET", "route": "/apps/{app}", "status": "200"}
    before = _sample(api.get("/metrics", as_=None).text, "http_requests_total", **labels)
    api.get("/apps/shop")
    api.get("/apps/shop")
    text = api.get("/metrics", as_=None).text
    assert _sample(text, "http_requests_total", **labels) == before + 2
    assert 'route="/apps/shop"' not in text
    assert "http_request_duration_seconds_bucket" in text
    assert api.get("/no/such/route").status_code == 404
    assert 'route="unmatched"' in api.get("/metrics", as_=None).text


def test_made_up_methods_and_paths_never_grow_the_metrics(api):
    """2,000 unauthenticated requests with distinct long methods and paths once grew
    /metrics to 155 MB: every label now comes from a fixed set."""
    before = len(api.get("/metrics", as_=None).content)
    for index in range(300):
        method = f"X{index:04d}" + "M" * 2000
        response = api.request(method, f"/apps/a{index}/{'p' * 500}", as_=None)
        assert response.status_code in (401, 404, 405)
    text = api.get("/metrics", as_=None).text
    assert len(text) < before + 20_000
    assert "MMMM" not in text and "pppp" not in text
    assert 'method="other"' in text

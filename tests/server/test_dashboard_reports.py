"""Deployment reports: what ``aether deploy`` measured, sent with POST /deployments and
finally with PUT /deployments/{id}/report; bounded, display-only, and only the app's
writers may send one (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from seeding import insert_artifact


@pytest.fixture
def shop(api):
    app = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    return app, api.run(insert_artifact, app["id"])


def _deploy(api, digest, **extra):
    body = {"app_name": "shop", "artifact_digest": digest, **extra}
    return api.post("/deployments", json=body, as_="deployer")


def test_the_first_report_rides_with_the_deployment_and_the_final_one_merges(api, shop):
    _, artifact = shop
    first = {"timings_ms": {"install": 800, "pack": 25.04, "upload": 12}, "uploaded_bytes": 981}
    created = _deploy(api, artifact["digest"], report={**first, "skipped_bytes": 0})
    assert created.status_code == 201
    path = f"/deployments/{created.json()['id']}/report"
    shown = api.get(path, as_="reader").json()
    assert shown["timings_ms"] == {"install": 800.0, "pack": 25.0, "upload": 12.0}
    assert (shown["uploaded_bytes"], shown["skipped_bytes"], shown["final"]) == (981, 0, False)

    final = {"timings_ms": {"register": 9, "rollout": 310, "total": 1160}}
    assert api.request("PUT", path, json=final, as_="deployer").status_code == 204
    shown = api.get(path).json()
    assert shown["timings_ms"]["install"] == 800.0 and shown["timings_ms"]["total"] == 1160.0
    assert shown["uploaded_bytes"] == 981 and shown["final"] is True


def test_an_unchanged_deploy_does_not_overwrite_the_running_deployments_report(api, shop):
    _, artifact = shop
    created = _deploy(api, artifact["digest"], report={"timings_ms": {"pack": 10}})
    again = _deploy(api, artifact["digest"], report={"timings_ms": {"pack": 99999}})
    assert again.status_code == 200 and again.json()["unchanged"] is True
    report = api.get(f"/deployments/{created.json()['id']}/report").json()
    assert report["timings_ms"] == {"pack": 10.0}


@pytest.mark.parametrize(
    "report, fragment",
    [
        ({"timings_ms": {"compile": 5}}, "unknown phase"),
        ({"timings_ms": {"pack": -1}}, "timings_ms.pack"),
        ({"timings_ms": {"pack": 86_400_001}}, "timings_ms.pack"),
        ({"timings_ms": {"pack": True}}, "timings_ms.pack"),
        ({"timings_ms": {"pack": "5"}}, "timings_ms.pack"),
        ({"timings_ms": [1, 2]}, "timings_ms"),
        ({"uploaded_bytes": -3}, "uploaded_bytes"),
        ({"uploaded_bytes": 2**60}, "uploaded_bytes"),
        ({"notes": "x"}, "unknown field"),
    ],
)
def test_reports_are_bounded(api, shop, report, fragment):
    _, artifact = shop
    refused = _deploy(api, artifact["digest"], report=report)
    assert refused.status_code == 400 and fragment in refused.json()["message"]
    created = _deploy(api, artifact["digest"])
    path = f"/deployments/{created.json()['id']}/report"
    refused = api.request("PUT", path, json=report, as_="deployer")
    assert refused.status_code == 400 and fragment in refused.json()["message"]


def test_a_nan_phase_is_refused(api, shop):
    _, artifact = shop
    created = _deploy(api, artifact["digest"])
    body = b'{"timings_ms": {"pack": NaN}}'
    response = api.request(
        "PUT",
        f"/deployments/{created.json()['id']}/report",
        content=body,
        headers={"Content-Type": "application/json"},
        as_="deployer",
    )
    assert response.status_code == 400


def test_only_the_apps_writers_report(api, shop):
    _, artifact = shop
    created = _deploy(api, artifact["digest"])
    path = f"/deployments/{created.json()['id']}/report"
    body = {"timings_ms": {"total": 1}}
    assert api.request("PUT", path, json=body, as_="reader").status_code == 403
    assert api.request("PUT", path, json=body, as_="other").status_code == 403
    assert api.request("PUT", path, json=body, as_=None).status_code == 401
    assert api.get(path, as_="reader").status_code == 404  # none was sent: says so
    assert api.request("PUT", "/deployments/nope/report", json=body).status_code == 404


def test_config_tells_clients_that_reports_are_taken(api):
    assert api.get("/config", as_="reader").json()["deploy_reports"] is True

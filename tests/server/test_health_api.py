"""Health, readiness, metrics, request ids and the error envelope for routing errors."""

from __future__ import annotations


def test_healthz_and_alias_are_open(api):
    for path in ("/healthz", "/health"):
        response = api.get(path, as_=None)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_readyz_reports_the_backend(api):
    response = api.get("/readyz", as_=None)
    assert response.status_code == 200
    assert response.json()["database"] == api.state.db.dialect


def test_request_id_is_kept_when_sent_and_made_when_not(api):
    kept = api.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert kept.headers["x-request-id"] == "trace-123"
    made = api.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32


def test_unknown_route_and_wrong_method_answer_with_the_envelope(api):
    missing = api.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert missing.headers["x-request-id"]
    wrong = api.request("PUT", "/healthz")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"

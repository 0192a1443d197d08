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


def test_config_reports_the_runtimes_target_platform(make_api):
    api = make_api(env={"AETHER_TARGET_PLATFORM": "linux-arm64-musl", "AETHER_NODE_MAJOR": "22"})
    target = api.get("/config", as_="reader").json()["target"]
    assert target == {
        "os": "linux",
        "cpu": "arm64",
        "libc": "musl",
        "glibc_version": None,
        "node_major": 22,
        "node_version": None,
    }


def test_config_defaults_to_this_machine_and_its_node(api):
    import shutil

    from aether.pack.target import host_target

    target = api.get("/config", as_="reader").json()["target"]
    host = host_target()
    assert (target["os"], target["cpu"], target["libc"]) == (host.os, host.cpu, host.libc)
    if shutil.which("node"):
        assert isinstance(target["node_major"], int) and target["node_version"].startswith(
            f"{target['node_major']}."
        )

"""The dashboard's sign-in, session cookie, CSRF checks, headers and roles, through the
in-process app (SQLite and PostgreSQL); the browser tests drive the same pages in Chromium."""

from __future__ import annotations

import re

import pytest
from seeding import insert_artifact

from aether.store import deployments as deployment_store
from aether.store import rollouts

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found[1]


def sign_in(api, role: str = "admin"):
    """A fresh browser-like client signed in with the role's token."""
    client = api.client
    client.cookies.clear()
    form = client.get("/ui/signin")
    answer = client.post(
        "/ui/signin",
        data={"csrf": _csrf(form.text), "token": api.tokens[role], "next": "/ui/apps"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return answer


@pytest.fixture
def shop(api):
    """The deployer's app with two running-then-superseded releases (v1, v2 running)."""
    app = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    ids = []
    for _ in range(2):
        artifact = api.run(insert_artifact, app["id"])
        body = {"app_name": "shop", "artifact_digest": artifact["digest"]}
        ids.append(api.post("/deployments", json=body, as_="deployer").json()["id"])
        api.run(rollouts.mark_deploying, ids[-1])
        api.run(rollouts.mark_running, ids[-1], "http://127.0.0.1:9")
    api.request("PATCH", "/apps/shop/config", json={"set": {"SECRET_X": "hunter2-value"}},
                as_="deployer")  # fmt: skip
    return ids


def test_the_session_cookie_is_httponly_strict_and_named_for_the_proxy(api):
    answer = sign_in(api)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("aether_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    assert answer.headers["location"] == "/ui/apps"
    assert api.tokens["admin"] not in answer.headers["location"] + cookie


def test_over_https_the_cookie_is_secure_and_host_prefixed(make_api):
    api = make_api(env={"AETHER_PUBLIC_URL": "https://aether.example"})
    client = api.client
    form = client.get("/ui/signin")
    assert form.headers["set-cookie"].startswith("__Host-aether_signin=")
    assert "Secure" in form.headers["set-cookie"]


def test_pages_need_a_session_and_carry_the_security_headers(api):
    api.client.cookies.clear()
    answer = api.client.get("/ui/apps", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/signin")
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/ui/apps"
    sign_in(api)
    page = api.client.get("/ui/apps")
    assert page.status_code == 200 and "Apps" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and " style=" not in page.text


def test_a_bad_token_is_refused_and_a_bearer_token_opens_no_page(api):
    client = api.client
    form = client.get("/ui/signin")
    answer = client.post("/ui/signin", data={"csrf": _csrf(form.text), "token": "ae_nope"})
    assert answer.status_code == 401 and "not valid" in answer.text
    client.cookies.clear()
    page = client.get("/ui/apps", headers=api.headers("admin"), follow_redirects=False)
    assert page.status_code == 303  # a page is a browser's: only the session cookie opens it


def test_the_signin_form_needs_its_own_csrf_token(api):
    api.client.cookies.clear()
    api.client.get("/ui/signin")
    forged = api.client.post("/ui/signin", data={"token": api.tokens["admin"]})
    assert forged.status_code == 403
    assert "aether_session" not in forged.headers.get("set-cookie", "")


def test_state_changing_posts_without_the_csrf_token_are_refused(api, shop):
    sign_in(api)
    client = api.client
    before = api.get("/apps/shop/releases").json()["releases"]
    forged = client.post("/ui/apps/shop/rollback", data={"to": "v1"}, follow_redirects=False)
    assert forged.status_code == 403
    wrong = client.post("/ui/apps/shop/rollback", data={"to": "v1", "csrf": "x" * 32})
    assert wrong.status_code == 403
    page = client.get("/ui/apps/shop")
    other_site = client.post(
        "/ui/apps/shop/scale",
        data={"replicas": "3", "csrf": _csrf(page.text)},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert api.get("/apps/shop/releases").json()["releases"] == before


def test_rollback_and_scale_from_the_page_make_releases(api, shop):
    sign_in(api, "deployer")
    client = api.client
    confirm = client.get("/ui/apps/shop/rollback?to=v1")
    assert confirm.status_code == 200 and "Roll back shop to v1?" in confirm.text
    done = client.post(
        "/ui/apps/shop/rollback",
        data={"to": "v1", "csrf": _csrf(confirm.text)},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "#timeline" in done.headers["location"]
    newest = api.get("/apps/shop/releases").json()["releases"][0]
    assert newest["description"] == "Rollback to v1" and newest["kind"] == "rollback"
    page = client.get("/ui/apps/shop")
    scaled = client.post("/ui/apps/shop/scale", data={"replicas": "2", "csrf": _csrf(page.text)})
    assert scaled.status_code == 200  # followed to the app page
    assert api.get("/apps/shop/releases").json()["releases"][0]["replicas"] == 2
    stopped = client.post("/ui/apps/shop/scale", data={"replicas": "0", "csrf": _csrf(page.text)})
    assert stopped.status_code == 200
    assert api.get("/apps/shop/releases").json()["releases"][0]["replicas"] == 0
    refused = client.post("/ui/apps/shop/scale", data={"replicas": "101", "csrf": _csrf(page.text)})
    assert refused.status_code == 400


def test_the_page_lists_every_instance_and_restarts_the_running_release(api, shop):
    from aether.store import instances, leases, rollouts, workers

    newest = api.get("/apps/shop/deployments").json()["deployments"][0]
    api.run(rollouts.mark_deploying, newest["id"])
    api.run(rollouts.mark_running, newest["id"], "http://10.0.0.9:4001")
    rows = [
        {
            "id": f"pod-{n}", "deployment_id": newest["id"], "state": state, "health": health,
            "restarts": n, "started_at": None, "host": f"node-{n}", "endpoint": None,
        }
        for n, (state, health) in enumerate((("running", "healthy"), ("restarting", "unhealthy")))
    ]  # fmt: skip
    app_id = api.get("/apps/shop").json()["id"]
    api.run(instances.replace, app_id, "worker-7", rows)
    sign_in(api, "deployer")
    client = api.client
    page = client.get("/ui/apps/shop")
    for row in rows:
        assert f'data-instance="{row["id"]}"' in page.text and row["host"] in page.text
    assert "no live worker" in page.text and "restarting" not in page.text  # not stale states
    beat = workers.Heartbeat("worker-7", "node-0", api.state.settings.runtime, "0")
    api.run(workers.heartbeat, beat, dead_secs=30)
    api.run(leases.acquire_lease, app_id, "worker-7", 30)
    page = client.get("/ui/apps/shop")
    assert "restarting" in page.text and "unhealthy" in page.text and "worker-7" in page.text
    assert "no live worker" not in page.text
    done = client.post(
        "/ui/apps/shop/restart", data={"csrf": _csrf(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and "#timeline" in done.headers["location"]
    newest = api.get("/apps/shop/deployments").json()["deployments"][0]
    assert newest["reason"] == "restart" and newest["status"] == "pending"
    history = client.get("/ui/apps/shop/releases").text  # the restart is in the history
    assert f'data-restart="{newest["id"]}"' in history and "Restart" in history


def test_a_reader_sees_names_but_no_values_and_no_buttons(api, shop):
    sign_in(api, "reader")
    client = api.client
    page = client.get("/ui/apps/shop")
    assert page.status_code == 200
    assert "SECRET_X" in page.text and "hunter2-value" not in page.text
    assert "Roll back" not in page.text and "Reveal values" not in page.text
    assert 'action="/ui/apps/shop/scale"' not in page.text
    assert 'action="/ui/apps/shop/restart"' not in page.text
    assert client.post("/ui/apps/shop/restart", data={"csrf": _csrf(page.text)}).status_code == 403
    assert client.get("/ui/apps/shop/config/values").status_code == 403
    assert client.get("/ui/apps/shop/rollback?to=v1").status_code == 403
    refused = client.post("/ui/apps/shop/rollback", data={"to": "v1", "csrf": _csrf(page.text)})
    assert refused.status_code == 403
    assert len(api.get("/apps/shop/releases").json()["releases"]) == 3  # two deploys, a config


def test_another_deployer_may_read_but_not_change_the_app(api, shop):
    sign_in(api, "other")
    page = api.client.get("/ui/apps/shop")
    assert "Roll back" not in page.text and "Reveal values" not in page.text
    sign_in(api, "deployer")
    page = api.client.get("/ui/apps/shop")
    assert "Roll back" in page.text and "Reveal values" in page.text
    values = api.client.get("/ui/apps/shop/config/values")
    assert "hunter2-value" in values.text


def test_sign_out_revokes_the_session(api):
    sign_in(api)
    client = api.client
    cookie = client.cookies.get("aether_session")
    page = client.get("/ui/apps")
    out = client.post("/ui/signout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("aether_session", cookie)  # a copy of the old cookie opens nothing
    assert client.get("/ui/apps", follow_redirects=False).status_code == 303


def test_revoking_the_token_ends_its_sessions(api):
    sign_in(api, "reader")
    token_id = api.get("/whoami", as_="reader").json()["token_id"]
    assert api.client.get("/ui/apps").status_code == 200
    assert api.delete(f"/tokens/{token_id}").status_code in (200, 204)
    assert api.client.get("/ui/apps", follow_redirects=False).status_code == 303


def test_a_one_time_link_signs_in_once(api):
    link = api.post("/signin-links", as_="reader")
    assert link.status_code == 201
    url = link.json()["url"]
    assert url.startswith("http://127.0.0.1:8080/ui/signin?link=")
    assert api.tokens["reader"] not in url
    client = api.client
    client.cookies.clear()
    path = url.removeprefix("http://127.0.0.1:8080")
    form = client.get(path)
    code = path.split("link=")[1]
    used = client.post("/ui/signin", data={"csrf": _csrf(form.text), "code": code},
                       follow_redirects=False)  # fmt: skip
    assert used.status_code == 303
    assert "reader" in client.get("/ui/apps").text
    client.cookies.clear()
    form = client.get(path)
    again = client.post("/ui/signin", data={"csrf": _csrf(form.text), "code": code})
    assert again.status_code == 401 and "used already" in again.text


def test_the_logs_stream_is_the_apis_behind_the_session(api, shop):
    sign_in(api, "reader")
    answer = api.client.get("/ui/apps/shop/logs/stream?tail=5")
    assert answer.status_code == 200  # the API's own stream: nothing stored yet, and it says so
    assert "no output of shop is stored yet" in answer.text
    api.client.cookies.clear()
    assert api.client.get("/ui/apps/shop/logs/stream").status_code == 401


def test_the_latency_page_summarises_reported_deploys(api, shop):
    deployment = api.run(deployment_store.get_deployment, shop[-1])
    assert deployment["status"] == "running"
    sign_in(api, "reader")
    page = api.client.get("/ui/latency?days=7")
    assert page.status_code == 200 and "shop" in page.text
    assert 'id="latency-data"' in page.text

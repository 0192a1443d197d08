"""The dashboard in a real browser (Chromium through Playwright) against a live
``aether serve`` on SQLite and on PostgreSQL: sign in, see the apps, watch a CLI deploy turn
running, see its log line arrive live (and the tail resume after a dropped stream without
gaps or repeats), roll back with the button and see the old version answer, sign out; a
reader sees no rollback button; a forged POST without the CSRF token is refused. Every page
is checked with axe-core and photographed at 1280×800 and 390×844."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORTS,
    axe_source,
    output_dir,
    require_chromium,
    serious_violations,
)
from e2e_support import api_get, app_copy, deploy, via_proxy, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
LONG = 60_000  # ms: a rollout on a loaded machine


@pytest.fixture
def chromium(server: Any) -> Iterator[Any]:
    """The browser, set up after (so closed before) the server, whose teardown needs a
    thread without Playwright's event loop."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium: Any, server: Any) -> Iterator[Callable[..., Any]]:
    """``open_page(token, viewport="wide")``: a page in a browser context of its own, signed
    in with ``token`` (None: not signed in); the contexts close after the test."""
    contexts: list[Any] = []

    def open_(token: str | None, viewport: str = "wide") -> Any:
        width, height = VIEWPORTS[viewport]
        contexts.append(chromium.new_context(viewport={"width": width, "height": height}))
        page = contexts[-1].new_page()
        if token is not None:
            _sign_in(page, server, token)
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def web(server: Any, tmp_path: Path) -> dict[str, Any]:
    """``web`` v1 (the example app at 1.0.0), deployed with the CLI and running."""
    code, first = deploy(server.env, app_copy(tmp_path, "web", "1.0.0"), "--app", "web")
    assert code == 0 and first["status"] == "running", first
    return first


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


@pytest.fixture
def server(live_server: Any, backend: str, request: pytest.FixtureRequest) -> Any:
    url = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else None
    return live_server(database_url=url, env={"AETHER_DEPLOY_BASELINE_SECS": "95"})


def _token(server: Any, role: str) -> str:
    body = json.dumps({"name": f"{role}-browser", "role": role}).encode()
    import urllib.request

    req = urllib.request.Request(
        server.url + "/tokens",
        data=body,
        headers={
            "Authorization": f"Bearer {server.admin_token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.loads(answer.read())["token"]


def _sign_in(page: Any, server: Any, token: str) -> None:
    page.goto(server.url + "/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/apps")


def _check(page: Any, axe: str, name: str, shots: Path, tag: str) -> None:
    page.screenshot(path=str(shots / f"{name}-{tag}.png"), full_page=True)
    assert serious_violations(page, axe) == [], name


def _release_row(page: Any, version: str) -> Any:
    return page.locator(f'#releases tr[data-release="{version}"]')


def test_a_team_follows_deploys_logs_and_rolls_back(
    open_page: Callable[..., Any], web: Any, axe: str, server: Any, backend: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    shots = output_dir(backend)
    page = open_page(None)
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)

    _sign_in(page, server, server.admin_token)
    row = page.locator('#apps-table tr[data-app="web"]')
    expect(row).to_contain_text("running")
    _check(page, axe, "apps", shots, "wide")

    page.click('a[href="/ui/apps/web"]')
    expect(_release_row(page, "v1")).to_contain_text("running")
    expect(_release_row(page, "v1").locator("svg.bar")).to_be_visible()  # the phase bar
    # A deploy made by the CLI while the page is open appears and turns running by itself.
    second = subprocess.Popen(
        [sys.executable, "-m", "aether", "deploy", str(app_copy(tmp_path, "web", "2.0.0")),
         "--app", "web", "--format", "json"],
        env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    expect(_release_row(page, "v2")).to_be_visible(timeout=LONG)
    expect(_release_row(page, "v2")).to_contain_text("running", timeout=LONG)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    expect(_release_row(page, "v2").locator("svg.bar")).to_be_visible(timeout=LONG)
    _check(page, axe, "app", shots, "wide")

    # Logs: a line the app prints now arrives live.
    page.goto(server.url + "/ui/apps/web/logs")
    expect(page.locator("#log-status")).to_have_text("Live", timeout=LONG)
    marker = f"/browser-{int(time.time() * 1000)}"
    assert via_proxy(server.port, "web", marker)[0] == 200
    expect(page.locator("#log")).to_contain_text(f"request GET {marker}", timeout=LONG)
    _check(page, axe, "logs", shots, "wide")

    # Roll back to v1 with the button; the rollout is followed, then v1 answers again.
    page.goto(server.url + "/ui/apps/web")
    page.click('#releases tr[data-release="v1"] a:has-text("Roll back")')
    expect(page.locator("h1")).to_contain_text("Roll back web to v1?")
    _check(page, axe, "rollback", shots, "wide")
    page.click('button:has-text("Roll back to v1")')
    expect(_release_row(page, "v3")).to_contain_text("running", timeout=LONG)
    expect(page.locator("#timeline")).to_contain_text("running", timeout=LONG)
    wait_for(
        lambda: b'"version":"1.0.0"' in via_proxy(server.port, "web")[1],
        timeout=60, what="v1 answering after the rollback",
    )  # fmt: skip

    page.goto(server.url + "/ui/latency")
    expect(page.locator("#latency-chart canvas")).to_be_visible()
    expect(page.locator("main")).to_contain_text("web")
    _check(page, axe, "latency", shots, "wide")

    # A forged POST without the CSRF token, from inside the signed-in page, is refused.
    status = page.evaluate(
        """async () => (await fetch('/ui/apps/web/rollback', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: 'to=v2'})).status"""
    )
    assert status == 403
    assert len(api_get(server, "/apps/web/releases")["releases"]) == 3

    page.click('button:has-text("Sign out")')
    page.wait_for_url("**/ui/signin**")
    page.goto(server.url + "/ui/apps")
    page.wait_for_url("**/ui/signin**")
    _check(page, axe, "signin", shots, "wide")
    assert blocked == []  # nothing the page needed was blocked by its own CSP
    _narrow_pages(open_page(None, "narrow"), axe, server, shots)


def _narrow_pages(page: Any, axe: str, server: Any, shots: Path) -> None:
    page.goto(server.url + "/ui/signin")
    _check(page, axe, "signin", shots, "narrow")
    _sign_in(page, server, server.admin_token)
    for name, path in (
        ("apps", "/ui/apps"),
        ("app", "/ui/apps/web"),
        ("logs", "/ui/apps/web/logs"),
        ("rollback", "/ui/apps/web/rollback?to=v2"),
        ("latency", "/ui/latency"),
    ):
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle") if name != "logs" else None
        _check(page, axe, name, shots, "narrow")


def test_a_reader_sees_no_buttons_and_the_tail_resumes_without_gaps_or_repeats(
    open_page: Callable[..., Any], web: Any, server: Any
) -> None:
    from playwright.sync_api import expect

    for index in range(3):
        via_proxy(server.port, "web", f"/before-{index}")
    page = open_page(_token(server, "reader"))
    page.goto(server.url + "/ui/apps/web")
    expect(_release_row(page, "v1")).to_contain_text("running")
    expect(page.locator("text=Roll back")).to_have_count(0)
    expect(page.locator("text=Reveal values")).to_have_count(0)
    expect(page.locator('form[action="/ui/apps/web/scale"]')).to_have_count(0)

    # The first stream is cut after the lines so far (a dropped connection); the page must
    # come back with the last line's cursor and show every later line exactly once.
    requests: list[str] = []

    def cut_first(route: Any) -> None:
        requests.append(route.request.url)
        if len(requests) == 1:
            ended = route.fetch(url=route.request.url.replace("follow=true", "follow=false"))
            route.fulfill(response=ended)
        else:
            route.continue_()

    page.route("**/logs/stream**", cut_first)
    page.goto(server.url + "/ui/apps/web/logs")
    expect(page.locator("#log")).to_contain_text("request GET /before-2", timeout=LONG)
    deadline = time.monotonic() + 30
    while len(requests) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # lets Playwright dispatch the route handler meanwhile
    assert "cursor=" in requests[1] and "tail=" not in requests[1]
    expect(page.locator("#log-status")).to_have_text("Live", timeout=LONG)
    via_proxy(server.port, "web", "/after-the-drop")
    expect(page.locator("#log")).to_contain_text("request GET /after-the-drop", timeout=LONG)
    texts = page.locator("#log .logline .text").all_text_contents()
    assert len(texts) == len(set(texts)), texts  # every line once (each request path is unique)
    assert texts.index("request GET /before-2") < texts.index("request GET /after-the-drop")

    # Pause, a line arrives, resume: it shows up once.
    page.click("#log-pause")
    expect(page.locator("#log-status")).to_contain_text("Paused")
    via_proxy(server.port, "web", "/while-paused")
    page.click("#log-pause")
    expect(page.locator("#log")).to_contain_text("request GET /while-paused", timeout=LONG)
    page.fill("#log-filter", "while-paused")
    expect(page.locator("#log .logline")).to_have_count(1)


def test_instances_scale_and_restart_from_the_app_page(
    open_page: Callable[..., Any], web: Any, axe: str, server: Any, backend: str
) -> None:
    from playwright.sync_api import expect

    shots = output_dir(backend)
    page = open_page(server.admin_token)
    page.goto(server.url + "/ui/apps/web")
    rows = page.locator("#instances tbody tr")
    expect(rows).to_have_count(1, timeout=LONG)

    page.fill("#replicas", "2")
    page.click('form[action="/ui/apps/web/scale"] button')
    expect(_release_row(page, "v2")).to_contain_text("running", timeout=LONG)

    def two_healthy() -> bool:
        page.goto(server.url + "/ui/apps/web")
        texts = page.locator("#instances tbody tr").all_inner_texts()
        return len(texts) == 2 and all("healthy" in t and "v2" in t for t in texts)

    wait_for(two_healthy, timeout=60, what="two healthy instances on the page")
    _check(page, axe, "instances", shots, "wide")

    page.click('form[action="/ui/apps/web/restart"] button')
    expect(page.locator("#timeline")).to_contain_text("restart of v2 requested", timeout=LONG)
    expect(page.locator("#timeline")).to_contain_text("running", timeout=LONG)
    restarted = api_get(server, "/apps/web/deployments")["deployments"][0]
    assert restarted["reason"] == "restart" and restarted["status"] == "running"

    def restarted_instances() -> bool:
        page.goto(server.url + "/ui/apps/web")
        ids = page.locator("#instances tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.instance)"
        )
        return len(ids) == 2 and all(i.startswith(restarted["id"][:8]) for i in ids)

    wait_for(restarted_instances, timeout=60, what="the restarted instances on the page")
    # The history lists the restart above the release it restarted.
    restart_row = page.locator(f'#releases tr[data-restart="{restarted["id"]}"]')
    expect(restart_row).to_contain_text("Restart", timeout=LONG)
    expect(restart_row).to_contain_text("running")
    _check(page, axe, "restart-history", shots, "wide")

"""``GET /apps/{app}/logs``: NDJSON from the shared log table (what workers ship), with
tail/since/cursor/follow, notices instead of silent empty answers, auth and errors, on SQLite
and PostgreSQL. Lines are stored with the store's own ``ship`` (what a worker calls)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from aether.store import apps as app_store
from aether.store import logs as log_store
from aether.store.clock import now_iso
from conftest import ApiHarness


@pytest.fixture
def logs_api(make_api: Callable[..., ApiHarness]) -> ApiHarness:
    api = make_api()
    api.run(app_store.create_app, "hello", owner=None)
    return api


def ship(api: ApiHarness, deployment_id: str, *lines: str, dropped: int = 0) -> None:
    async def store(db: Any) -> None:
        app = await app_store.require_app(db, "hello")
        source = "test/hello"
        after = await log_store.source_position(db, source)
        new = [log_store.NewLine(now_iso(), deployment_id, "host-1", "stdout", x) for x in lines]
        batch = log_store.Batch(source, app["id"], after, f"{after or ''}+", new, dropped)
        assert await log_store.ship(db, batch)

    api.run(store)


def ndjson(response: Any) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_history_with_tail_and_cursor(logs_api: ApiHarness) -> None:
    ship(logs_api, "dep-1", "a", "b")
    ship(logs_api, "dep-2", "c")
    everything = ndjson(logs_api.get("/apps/hello/logs", as_="reader"))
    assert [(x["deployment_id"], x["line"]) for x in everything] == [
        ("dep-1", "a"),
        ("dep-1", "b"),
        ("dep-2", "c"),
    ]
    assert set(everything[0]) == {"ts", "deployment_id", "instance", "stream", "line", "cursor"}
    assert [x["cursor"] for x in everything] == ["1", "2", "3"]
    assert [x["line"] for x in ndjson(logs_api.get("/apps/hello/logs?tail=1"))] == ["c"]
    assert ndjson(logs_api.get("/apps/hello/logs?tail=0")) == []
    resumed = logs_api.get("/apps/hello/logs", params={"cursor": everything[0]["cursor"]})
    assert [x["line"] for x in ndjson(resumed)] == ["b", "c"]
    assert len(ndjson(logs_api.get("/apps/hello/logs?container=app"))) == 3
    assert ndjson(logs_api.get("/apps/hello/logs?since=2000-01-01T00:00:00Z"))[0]["line"] == "a"
    assert ndjson(logs_api.get("/apps/hello/logs?since=2999-01-01T00:00:00Z")) == []


def test_dropped_lines_are_said_in_the_stream(logs_api: ApiHarness) -> None:
    ship(logs_api, "dep-1", "a")
    ship(logs_api, "dep-1", "z", dropped=120)
    lines = ndjson(logs_api.get("/apps/hello/logs"))
    assert [x["stream"] for x in lines] == ["stdout", "notice", "stdout"]
    assert lines[1]["line"].startswith("120 lines dropped")
    assert lines[1]["cursor"] == "2"  # stored like any line: resuming never repeats it


def test_nothing_stored_is_said_never_an_empty_answer(logs_api: ApiHarness) -> None:
    (only,) = ndjson(logs_api.get("/apps/hello/logs"))
    assert only["stream"] == "notice"
    assert "no output of hello is stored yet" in only["line"]
    assert "no live worker for runtime local" in only["line"]
    assert only["cursor"] == ""


def test_follow_streams_lines_shipped_later(logs_api: ApiHarness) -> None:
    """On PostgreSQL the replica hears each stored batch (NOTIFY) and a follow waits for it
    rather than polling; on SQLite there is nothing to hear and a follow polls."""
    postgres = logs_api.state.db.dialect == "postgresql"
    deadline = time.monotonic() + 10
    while logs_api.state.line_wakeups.heard != postgres and time.monotonic() < deadline:
        time.sleep(0.02)
    assert logs_api.state.line_wakeups.heard == postgres
    ship(logs_api, "dep-1", "before")
    headers = logs_api.headers("admin")
    with logs_api.client.stream("GET", "/apps/hello/logs?follow=true", headers=headers) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["line"] == "before"
        ship(logs_api, "dep-1", "after")
        assert json.loads(next(lines))["line"] == "after"
        ship(logs_api, "dep-2", "next deployment")
        followed = json.loads(next(lines))
        assert (followed["deployment_id"], followed["line"]) == ("dep-2", "next deployment")


def test_follow_from_a_cursor_repeats_nothing(logs_api: ApiHarness) -> None:
    ship(logs_api, "dep-1", "one", "two", "three")
    headers = logs_api.headers("admin")
    url = "/apps/hello/logs?follow=true&cursor=2"
    with logs_api.client.stream("GET", url, headers=headers) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["line"] == "three"
        ship(logs_api, "dep-1", "four")
        assert json.loads(next(lines))["cursor"] == "4"


@pytest.mark.parametrize(
    "query",
    [
        "tail=-1",
        "tail=x",
        "cursor=garbage",
        "cursor=3-120",
        "since=yesterday",
        "since=99999999999999h",
        "follow=maybe",
        "container=fetch",
        "container=sidecar",
    ],
)
def test_bad_parameters_are_400(logs_api: ApiHarness, query: str) -> None:
    response = logs_api.get(f"/apps/hello/logs?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_unknown_app_is_404_and_no_token_is_401(logs_api: ApiHarness) -> None:
    assert logs_api.get("/apps/nope/logs").status_code == 404
    assert logs_api.get("/apps/hello/logs", as_=None).status_code == 401


def test_a_long_history_with_a_gap_comes_whole_and_in_order(logs_api: ApiHarness) -> None:
    """Pages are ranges of seq: more lines than a page, and a cursor below lines that
    retention deleted, still give every stored line once, in order."""
    for batch in range(5):
        ship(logs_api, "dep-1", *(f"{batch}-{index:03d}" for index in range(500)))
    policy = log_store.Retention(max_age_secs=86400, max_bytes_per_app=1200 * 6)
    logs_api.run(log_store.enforce_retention, policy)  # keeps the newest 1,200 (6 bytes each)
    lines = ndjson(logs_api.get("/apps/hello/logs", params={"cursor": "3"}))
    assert [int(x["cursor"]) for x in lines] == list(range(1301, 2501))
    assert lines[-1]["line"] == "4-499"

"""``GET /apps/{app}/logs``: NDJSON from the runtime's log files, tail/since/cursor/follow,
auth and errors. Lines are written with the runtime's own log writer (no process needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aether.settings import WorkerSettings
from aether.store import apps as app_store
from aether.worker.runtimes.local import LocalRuntime
from aether.worker.runtimes.logfiles import LogWriter
from conftest import ApiHarness


@pytest.fixture
def runtime(tmp_path: Path) -> LocalRuntime:
    return LocalRuntime(WorkerSettings.from_env({"AETHER_DATA_DIR": str(tmp_path / "rt")}))


@pytest.fixture
def logs_api(make_api: Callable[..., ApiHarness], runtime: LocalRuntime) -> ApiHarness:
    api = make_api(log_source=runtime)
    api.run(app_store.create_app, "hello", owner=None)
    return api


def write(runtime: LocalRuntime, deployment_id: str, *lines: str) -> None:
    writer = LogWriter(runtime.apps_dir / "hello" / "logs", deployment_id)
    for line in lines:
        writer.write("stdout", line)
    writer.close()


def ndjson(response: Any) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_history_with_tail_and_cursor(logs_api: ApiHarness, runtime: LocalRuntime) -> None:
    write(runtime, "dep-1", "a", "b")
    write(runtime, "dep-2", "c")
    everything = ndjson(logs_api.get("/apps/hello/logs", as_="reader"))
    assert [(x["deployment_id"], x["line"]) for x in everything] == [
        ("dep-1", "a"),
        ("dep-1", "b"),
        ("dep-2", "c"),
    ]
    assert set(everything[0]) == {"ts", "deployment_id", "stream", "line", "cursor"}
    assert [x["line"] for x in ndjson(logs_api.get("/apps/hello/logs?tail=1"))] == ["c"]
    resumed = logs_api.get("/apps/hello/logs", params={"cursor": everything[0]["cursor"]})
    assert [x["line"] for x in ndjson(resumed)] == ["b", "c"]
    assert len(ndjson(logs_api.get("/apps/hello/logs?container=app"))) == 3


def test_follow_streams_lines_written_later(logs_api: ApiHarness, runtime: LocalRuntime) -> None:
    write(runtime, "dep-1", "before")
    headers = logs_api.headers("admin")
    with logs_api.client.stream("GET", "/apps/hello/logs?follow=true", headers=headers) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["line"] == "before"
        write(runtime, "dep-1", "after")
        assert json.loads(next(lines))["line"] == "after"
        write(runtime, "dep-2", "next deployment")
        followed = json.loads(next(lines))
        assert (followed["deployment_id"], followed["line"]) == ("dep-2", "next deployment")


@pytest.mark.parametrize(
    "query",
    [
        "tail=-1",
        "tail=x",
        "cursor=garbage",
        "since=yesterday",
        "since=99999999999999h",
        "follow=maybe",
        "container=fetch",
    ],
)
def test_bad_parameters_are_400(logs_api: ApiHarness, query: str) -> None:
    response = logs_api.get(f"/apps/hello/logs?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_unknown_app_is_404_and_no_token_is_401(logs_api: ApiHarness) -> None:
    assert logs_api.get("/apps/nope/logs").status_code == 404
    assert logs_api.get("/apps/hello/logs", as_=None).status_code == 401


def test_without_a_log_source_is_503(make_api: Callable[..., ApiHarness]) -> None:
    api = make_api()
    api.run(app_store.create_app, "hello", owner=None)
    response = api.get("/apps/hello/logs")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"

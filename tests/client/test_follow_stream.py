"""Following a deployment over a real socket: the stream's closing ``{"deployment": …}`` line
is the outcome, and a server that sends none is asked ``GET /deployments/{id}``."""

from __future__ import annotations

import json

import pytest
from http_support import scripted_server, url_of

from aether.client.api import ApiClient
from aether.client.follow import RolloutFailed, follow_deployment

RUNNING = {"id": "d1", "app_name": "web", "status": "running", "url": "http://web.localhost"}
EVENTS = [
    {"id": 1, "phase": "pending", "message": "created", "timestamp": "t"},
    {"id": 2, "phase": "running", "message": "healthy", "timestamp": "t"},
]


def ndjson(*items: object) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def test_the_outcome_line_ends_the_follow_without_another_request() -> None:
    with scripted_server() as server:
        server.script.append((200, {}, ndjson(*EVENTS, {"deployment": RUNNING})))
        seen: list[str] = []
        with ApiClient(url_of(server).rstrip("/"), "token") as api:
            done = follow_deployment(api, "d1", on_event=lambda e: seen.append(e["phase"]))
    assert done == RUNNING and seen == ["pending", "running"]
    (request,) = server.seen
    assert request["path"].startswith("/deployments/d1/events?")
    assert "follow=true" in request["path"] and "outcome=true" in request["path"]


def test_a_failed_outcome_line_is_the_rollouts_error() -> None:
    failed = {**RUNNING, "status": "failed", "failure_reason": "exit 1"}
    with scripted_server() as server:
        server.script.append((200, {}, ndjson(EVENTS[0], {"deployment": failed})))
        with ApiClient(url_of(server).rstrip("/"), "token") as api:
            with pytest.raises(RolloutFailed, match="exit 1"):
                follow_deployment(api, "d1")
    assert len(server.seen) == 1


def test_a_server_without_the_outcome_line_is_asked_for_the_deployment() -> None:
    with scripted_server() as server:
        server.script += [(200, {}, ndjson(*EVENTS)), (200, {}, json.dumps(RUNNING).encode())]
        with ApiClient(url_of(server).rstrip("/"), "token") as api:
            assert follow_deployment(api, "d1") == RUNNING
    assert [r["path"] for r in server.seen][1] == "/deployments/d1"

"""Workers you can see: ``GET /workers`` from heartbeats, the deploy wait saying at once that
no live worker will take a deployment, and cancelling a pending deployment — on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aether.store import apps as app_store
from aether.store import workers as worker_store
from aether.store.clock import now_iso
from conftest import ApiHarness
from release_rows import deploy_release

DIGEST = "a" * 64


def beat(api: ApiHarness, worker_id: str, *, dead_secs: float = 30.0, runtime: str = "local"):  # type: ignore[no-untyped-def]
    heartbeat = worker_store.Heartbeat(
        id=worker_id,
        host="host-b",
        runtime=runtime,
        version="0.1.0",
        advertise_addr="10.0.0.2",
        isolation={"kind": "bubblewrap"},
        apps=["web"],
    )
    api.run(worker_store.heartbeat, heartbeat, dead_secs=dead_secs)


def pending_deployment(api: ApiHarness) -> str:
    async def make(db: Any) -> str:
        app = await app_store.create_app(db, "web", owner=None)
        await db.execute(
            "INSERT INTO artifacts (id, app_id, digest, size_bytes, status, storage_key,"
            " created_at) VALUES (:id, :app, :digest, 1, 'stored', 'k', :now)",
            {"id": str(uuid.uuid4()), "app": app["id"], "digest": DIGEST, "now": now_iso()},
        )
        outcome = await deploy_release(db, app["id"], DIGEST)
        return str(outcome.deployment["id"])

    return str(api.run(make))


def test_workers_lists_heartbeats_and_liveness(make_api: Callable[..., ApiHarness]) -> None:
    api = make_api()
    assert api.get("/workers", as_="reader").json() == {
        "workers": [],
        "runtime": "local",
        "live": False,
    }
    beat(api, "w-live")
    beat(api, "w-gone", dead_secs=-1)
    body = api.get("/workers", as_="reader").json()
    assert [(w["id"], w["alive"]) for w in body["workers"]] == [("w-live", True), ("w-gone", False)]
    live = body["workers"][0]
    assert (live["host"], live["advertise_addr"], live["apps"]) == ("host-b", "10.0.0.2", ["web"])
    assert live["isolation"] == {"kind": "bubblewrap"}
    assert body["live"] is True
    assert api.get("/workers", as_=None).status_code == 401


def test_a_follow_says_at_once_that_no_live_worker_will_take_it(
    make_api: Callable[..., ApiHarness],
) -> None:
    api = make_api()
    deployment_id = pending_deployment(api)
    started = time.monotonic()
    url = f"/deployments/{deployment_id}/events?follow=true"
    with api.client.stream("GET", url, headers=api.headers("admin")) as response:
        for raw in response.iter_lines():
            event = json.loads(raw)
            if event["phase"] == "waiting":
                break
    assert time.monotonic() - started < 5
    assert "id" not in event
    assert event["message"] == (
        "no live worker for runtime local — the deployment will start when one is"
    )


def test_a_pending_deployment_can_be_cancelled_once(make_api: Callable[..., ApiHarness]) -> None:
    api = make_api()
    deployment_id = pending_deployment(api)
    assert (
        api.post(f"/deployments/{deployment_id}/cancel", json={}, as_="reader").status_code == 403
    )
    not_owner = api.post(f"/deployments/{deployment_id}/cancel", json={}, as_="deployer")
    assert not_owner.status_code == 403  # a deployer cancels only its own apps' deployments
    done = api.post(f"/deployments/{deployment_id}/cancel", json={}, as_="admin")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "failed"
    assert "cancelled by" in done.json()["failure_reason"]
    events = api.get(f"/deployments/{deployment_id}/events").json()["events"]
    assert events[-1]["phase"] == "cancelled"
    again = api.post(f"/deployments/{deployment_id}/cancel", json={})
    assert again.status_code == 409
    assert "not pending" in again.json()["message"]
    assert api.post(f"/deployments/{uuid.uuid4()}/cancel", json={}).status_code == 404

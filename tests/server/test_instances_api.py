"""``GET /apps/{app}/status`` and ``POST /apps/{app}/restart``: instances as the worker
recorded them, the worker notice, the last rollout; a restart is another rollout of the
running release, recorded with its reason."""

from __future__ import annotations

import pytest
from seeding import insert_artifact

from aether.store import instances, leases, rollouts, workers


@pytest.fixture
def shop(api):
    app = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    return app, api.run(insert_artifact, app["id"])


def deploy(api, digest):
    body = {"app_name": "shop", "artifact_digest": digest, "replicas": 2}
    return api.post("/deployments", json=body, as_="deployer").json()


def run(api, deployment_id):
    api.run(rollouts.mark_deploying, deployment_id)
    api.run(rollouts.mark_running, deployment_id, "http://10.0.0.5:4001")


def instance(deployment_id, index, **extra):
    return {
        "id": f"{deployment_id[:8]}-{index}",
        "deployment_id": deployment_id,
        "state": "running",
        "health": "healthy",
        "restarts": 0,
        "started_at": "2026-01-01T00:00:00.000000Z",
        "host": "node-a",
        "endpoint": f"http://10.0.0.5:400{index}",
        **extra,
    }


def beat(api, worker_id="worker-1"):
    heartbeat = workers.Heartbeat(worker_id, "node-a", api.state.settings.runtime, "0")
    api.run(workers.heartbeat, heartbeat, dead_secs=30)


def test_status_shows_each_instance_as_the_worker_recorded_it(api, shop):
    app, artifact = shop
    beat(api)
    empty = api.get("/apps/shop/status", as_="reader").json()
    assert empty == {
        "app": "shop",
        "release": None,
        "replicas": 0,
        "instances": [],
        "last_rollout": None,
        "worker": {"live": True, "message": None},
    }
    deployment = deploy(api, artifact["digest"])
    run(api, deployment["id"])
    api.run(leases.acquire_lease, app["id"], "worker-1", 30)
    rows = [instance(deployment["id"], 1), instance(deployment["id"], 2, restarts=3)]
    api.run(instances.replace, app["id"], "worker-1", rows)
    body = api.get("/apps/shop/status", as_="reader").json()
    assert body["release"] == 1 and body["replicas"] == 2
    assert body["worker"] == {"live": True, "message": None}
    assert body["last_rollout"]["id"] == deployment["id"]
    assert body["last_rollout"]["status"] == "running"
    assert [i["id"] for i in body["instances"]] == [r["id"] for r in rows]
    first = body["instances"][1]
    assert first == {
        "id": rows[1]["id"],
        "deployment_id": deployment["id"],
        "release": 1,
        "state": "running",
        "health": "healthy",
        "restarts": 3,
        "started_at": "2026-01-01T00:00:00.000000Z",
        "host": "node-a",
        "worker": "worker-1",
    }
    assert "endpoint" not in first


def test_without_a_live_worker_status_says_so_instead_of_running(api, shop):
    app, artifact = shop
    deployment = deploy(api, artifact["digest"])
    run(api, deployment["id"])
    api.run(instances.replace, app["id"], "worker-1", [instance(deployment["id"], 1)])
    api.run(leases.acquire_lease, app["id"], "worker-1", -1)  # expired
    body = api.get("/apps/shop/status").json()
    assert body["worker"]["live"] is False
    runtime = api.state.settings.runtime
    assert f"no live worker for runtime {runtime}" in body["worker"]["message"]
    assert [(i["state"], i["health"]) for i in body["instances"]] == [("unknown", "unknown")]
    beat(api)  # a worker runs, but none holds the app
    body = api.get("/apps/shop/status").json()
    assert body["worker"]["live"] is False
    assert "no live worker holds this app" in body["worker"]["message"]
    api.run(leases.acquire_lease, app["id"], "worker-1", 30)
    body = api.get("/apps/shop/status").json()
    assert body["worker"] == {"live": True, "message": None}
    assert [(i["state"], i["health"]) for i in body["instances"]] == [("running", "healthy")]


def test_the_router_spreads_over_healthy_instances_only(api, shop):
    app, artifact = shop
    deployment = deploy(api, artifact["digest"])
    run(api, deployment["id"])
    rows = [
        instance(deployment["id"], 1),
        instance(deployment["id"], 2, health="unhealthy"),
        instance(deployment["id"], 3, state="restarting"),
        instance(deployment["id"], 4),
    ]
    api.run(instances.replace, app["id"], "worker-1", rows)
    serving = api.run(rollouts.serving_endpoints, "shop")
    assert serving == {
        "endpoints": ["http://10.0.0.5:4001", "http://10.0.0.5:4004"],
        "stopped": False,
    }
    api.run(instances.replace, app["id"], "worker-1", [])  # not recorded yet: the deployment's
    serving = api.run(rollouts.serving_endpoints, "shop")
    assert serving["endpoints"] == ["http://10.0.0.5:4001"]
    assert api.run(rollouts.serving_endpoints, "nope") is None


def test_restart_is_a_new_rollout_of_the_running_release(api, shop):
    app, artifact = shop
    refused = api.post("/apps/shop/restart", as_="deployer")
    assert refused.status_code == 409 and "deploy it first" in refused.json()["message"]
    deployment = deploy(api, artifact["digest"])
    pending = api.post("/apps/shop/restart", as_="deployer")
    assert pending.status_code == 409 and "still rolling out" in pending.json()["message"]
    run(api, deployment["id"])
    restarted = api.post("/apps/shop/restart", as_="deployer")
    assert restarted.status_code == 201, restarted.text
    body = restarted.json()
    assert body["unchanged"] is False
    assert body["release"]["version"] == 1  # the same release: no new one
    assert body["deployment"]["reason"] == "restart"
    assert body["deployment"]["status"] == "pending"
    assert body["deployment"]["replicas"] == 2
    assert body["deployment"]["id"] != deployment["id"]
    events = api.get(f"/deployments/{body['deployment']['id']}/events").json()
    assert "restart of v1 requested" in [e["message"] for e in events["events"]]
    status = api.get("/apps/shop/status").json()
    assert status["last_rollout"]["reason"] == "restart"
    releases = api.get("/apps/shop/releases").json()["releases"]
    assert [(r["version"], r["restarts"], r["status"]) for r in releases] == [(1, 1, "pending")]
    # The history lists the restart under the release it restarted, who and when.
    (entry,) = releases[0]["restarted"]
    assert entry["deployment_id"] == body["deployment"]["id"] and entry["status"] == "pending"
    assert entry["created_by"] and entry["created_at"]
    assert api.get("/apps/shop/releases/v1").json()["restarted"] == [entry]
    assert api.get("/apps/shop").json()["release"]["restarted"] == [entry]
    assert body["release"]["restarted"] == [entry]
    listed = api.get("/apps/shop/deployments").json()["deployments"]
    assert [d["reason"] for d in listed[:2]] == ["restart", None]
    assert api.get("/apps/nope/status").status_code == 404
    assert api.post("/apps/nope/restart").status_code == 404


def test_the_worker_keeps_instances_only_when_a_release_changes_its_scale_alone(api, shop):
    app, artifact = shop
    first = deploy(api, artifact["digest"])
    run(api, first["id"])
    scaled = api.post("/apps/shop/scale", json={"replicas": 3}, as_="deployer")
    assert scaled.status_code == 201, scaled.text
    up = scaled.json()["deployment"]["id"]
    assert api.run(rollouts.scaled_from, up) == first["id"]  # only the difference starts
    run(api, up)
    restarted = api.post("/apps/shop/restart", as_="deployer").json()["deployment"]["id"]
    assert api.run(rollouts.scaled_from, restarted) is None  # a restart replaces them all
    run(api, restarted)
    changed = api.request(
        "PATCH", "/apps/shop/config", json={"set": {"COLOUR": "blue"}}, as_="deployer"
    ).json()["deployment"]["id"]
    assert api.run(rollouts.scaled_from, changed) is None  # another environment
    run(api, changed)
    down = api.post("/apps/shop/scale", json={"replicas": 1}, as_="deployer")
    assert api.run(rollouts.scaled_from, down.json()["deployment"]["id"]) == changed

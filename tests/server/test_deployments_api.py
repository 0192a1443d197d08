"""Deployments: creation rules, idempotency, events, pagination, rollback."""

from __future__ import annotations

import json
import re

import pytest
from seeding import insert_artifact

from aether.store import deployments as store
from aether.store import rollouts


@pytest.fixture
def shop(api):
    """An app owned by the deployer, with one stored artifact; returns (app, artifact)."""
    app = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    artifact = api.run(insert_artifact, app["id"])
    return app, artifact


def deploy(api, digest, as_="deployer", **extra):
    return api.post(
        "/deployments", json={"app_name": "shop", "artifact_digest": digest, **extra}, as_=as_
    )


def test_create_deployment_is_pending_with_the_fields_clients_use(api, shop):
    _, artifact = shop
    response = deploy(api, artifact["digest"], env={"A": "1"}, replicas=2, start_command="node x")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["app_name"] == "shop" and body["artifact_digest"] == artifact["digest"]
    assert body["release"] == 1 and body["config_version"] == 0 and body["replicas"] == 2
    assert list(body["env"]) == ["A"] and re.fullmatch(r"[0-9a-f]{8}", body["env"]["A"])
    assert body["unchanged"] is False and body["dropped_overrides"] == []
    assert body["start_command"] == "node x"
    assert body["url"] == "http://shop.localhost:8080/"
    assert body["rollout_started_at"] is None
    events = api.get(f"/deployments/{body['id']}/events").json()["events"]
    assert [e["phase"] for e in events] == ["pending"]


def test_the_same_release_while_active_is_unchanged(api, shop):
    _, artifact = shop
    first = deploy(api, artifact["digest"], env={"A": "1"})
    second = deploy(api, artifact["digest"], env={"A": "1"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"] and second.json()["unchanged"] is True
    api.run(rollouts.mark_failed, first.json()["id"], "boom")
    third = deploy(api, artifact["digest"], env={"A": "1"})
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    assert third.json()["release"] == 2


def test_an_artifact_that_is_not_stored_is_a_bad_request(api, shop):
    app, _ = shop
    pending = api.run(insert_artifact, app["id"], status="pending")
    missing = "0" * 64
    for digest in (pending["digest"], missing):
        response = deploy(api, digest)
        assert response.status_code == 400
        assert digest in response.json()["message"]
    assert deploy(api, "not-a-digest").status_code == 400


def test_require_signature_refuses_unverified_artifacts(make_api):
    api = make_api(env={"AETHER_REQUIRE_SIGNATURE": "true"})
    app = api.post("/apps", json={"name": "shop"}).json()
    unsigned = api.run(insert_artifact, app["id"])
    signed = api.run(insert_artifact, app["id"], verified=True)
    refused = deploy(api, unsigned["digest"], as_="admin")
    assert refused.status_code == 400
    assert "signature" in refused.json()["message"]
    assert deploy(api, signed["digest"], as_="admin").status_code == 201


def test_rollout_times_are_stamped_as_the_worker_moves_it(api, shop):
    _, artifact = shop
    deployment_id = deploy(api, artifact["digest"]).json()["id"]
    api.run(rollouts.mark_deploying, deployment_id)
    started = api.get(f"/deployments/{deployment_id}").json()
    assert started["status"] == "deploying" and started["rollout_started_at"]
    api.run(rollouts.mark_running, deployment_id, "http://127.0.0.1:9999")
    done = api.get(f"/deployments/{deployment_id}").json()
    assert done["rollout_completed_at"] and done["endpoint"] == "http://127.0.0.1:9999"
    assert done["rollout_started_at"] == started["rollout_started_at"]


def test_app_deployments_are_paginated_newest_first(api, shop):
    app, _ = shop
    ids = []
    for _ in range(5):
        artifact = api.run(insert_artifact, app["id"])
        ids.append(deploy(api, artifact["digest"]).json()["id"])
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/apps/shop/deployments{query}", as_="reader").json()
        seen += [d["id"] for d in page["deployments"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    exact = api.get("/apps/shop/deployments?limit=5").json()
    assert len(exact["deployments"]) == 5 and exact["next_cursor"] is None
    assert api.get("/apps/shop/deployments?limit=4").json()["next_cursor"] is not None
    assert api.get("/apps/shop/deployments?limit=0").status_code == 400
    assert api.get("/apps/shop/deployments?cursor=%%%").status_code == 400


def test_listed_deployments_are_the_objects_the_api_shows_one_by_one(api, shop):
    # The database writes the listing's objects; they must match models.deployment_from exactly,
    # keys and their order included, whatever the fields hold.
    app, first = shop
    plain = deploy(api, first["digest"]).json()["id"]
    api.run(rollouts.mark_deploying, plain)
    api.run(rollouts.mark_running, plain, "http://127.0.0.1:9999")
    second = api.run(insert_artifact, app["id"])
    env = {"GREETING": 'héllo "wörld"\n\t✓', "EMPTY": "", "PATH": "/a\\b"}
    rich = deploy(
        api,
        second["digest"],
        env=env,
        replicas=3,
        start_command="node server.js --port=$PORT",
        health_path="/healthz?deep=1",
    ).json()["id"]
    api.run(rollouts.mark_failed, rich, "exit code 1: «boom»")
    rolled = api.post("/apps/shop/rollback", json={"to": rich}, as_="deployer").json()["id"]
    listed = api.get("/apps/shop/deployments", as_="reader").json()["deployments"]
    assert [item["id"] for item in listed] == [rolled, rich, plain]
    for item in listed:
        single = api.get(f"/deployments/{item['id']}").json()
        assert json.dumps(item) == json.dumps(single)  # types and key order too
    assert sorted(listed[1]["env"]) == sorted(env) and listed[1]["replicas"] == 3
    assert not set(listed[1]["env"].values()) & set(env.values())  # fingerprints, never values
    assert listed[0]["rolled_back_from"] == rich and listed[0]["env"] == listed[1]["env"]


def test_events_after_and_follow_of_a_finished_deployment(api, shop):
    _, artifact = shop
    deployment_id = deploy(api, artifact["digest"]).json()["id"]
    api.run(store.add_event, deployment_id, "deploying", "starting")
    api.run(store.add_event, deployment_id, "running", "healthy")
    api.run(rollouts.mark_running, deployment_id, None)
    events = api.get(f"/deployments/{deployment_id}/events").json()["events"]
    later = api.get(f"/deployments/{deployment_id}/events?after={events[0]['id']}").json()
    assert [e["phase"] for e in later["events"]] == ["deploying", "running"]
    streamed = api.get(f"/deployments/{deployment_id}/events?follow=true")
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert [e["phase"] for e in lines] == ["pending", "deploying", "running"]


def test_a_follow_asked_for_the_outcome_ends_with_the_deployment_itself(api, shop):
    _, artifact = shop
    deployment_id = deploy(api, artifact["digest"]).json()["id"]
    api.run(store.add_event, deployment_id, "running", "healthy")
    api.run(rollouts.mark_running, deployment_id, None)
    streamed = api.get(f"/deployments/{deployment_id}/events?follow=true&outcome=true")
    *events, last = [json.loads(line) for line in streamed.text.splitlines()]
    assert [e["phase"] for e in events] == ["pending", "running"]
    assert last == {"deployment": api.get(f"/deployments/{deployment_id}").json()}
    assert last["deployment"]["status"] == "running"
    after = api.get(f"/deployments/{deployment_id}/events?follow=true&after={events[-1]['id']}")
    assert after.text == ""  # without outcome=true, only events, as before


def test_a_follower_wakes_at_once_for_events_written_in_this_process(api, shop, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from aether.server.routes import deployments as routes

    # Far beyond the wait below: only the in-process wake-up can end the stream in time.
    monkeypatch.setattr(routes, "FOLLOW_POLL_SECS", 120.0)
    _, artifact = shop
    deployment_id = deploy(api, artifact["digest"]).json()["id"]
    with ThreadPoolExecutor(1) as pool:
        follow = pool.submit(api.get, f"/deployments/{deployment_id}/events?follow=true")
        # What the embedded worker writes (its own store functions).
        api.run(rollouts.record_event, deployment_id, "running", "healthy")
        api.run(rollouts.mark_running, deployment_id, "http://127.0.0.1:1")
        streamed = follow.result(timeout=30)
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert [e["phase"] for e in lines] == ["pending", "running"]


def test_rollback_redeploys_the_previous_successful_artifact(api, shop):
    app, first_artifact = shop
    first = deploy(api, first_artifact["digest"]).json()
    api.run(rollouts.mark_running, first["id"], None)
    second_artifact = api.run(insert_artifact, app["id"])
    second = deploy(api, second_artifact["digest"], env={"V": "2"}).json()
    api.run(rollouts.mark_running, second["id"], None)  # supersedes the first
    response = api.post("/apps/shop/rollback", json={}, as_="deployer")
    assert response.status_code == 201
    body = response.json()
    assert body["artifact_digest"] == first_artifact["digest"]
    assert body["rolled_back_from"] == first["id"] and body["status"] == "pending"
    assert body["release"] == 3 and body["config_version"] == 0 and body["env"] == {}
    again = api.post("/apps/shop/rollback", json={"to": "v3"})
    assert again.status_code == 200 and again.json()["unchanged"] is True  # v3 is desired
    assert again.json()["id"] == body["id"]
    forward = api.post("/apps/shop/rollback", json={"to": second["id"]}).json()
    assert forward["release"] == 4 and list(forward["env"]) == ["V"]


def test_rollback_without_history_is_a_bad_request(api, shop):
    response = api.post("/apps/shop/rollback", json={})
    assert response.status_code == 400
    assert "roll back" in response.json()["message"]
    assert api.post("/apps/shop/rollback", json={"to": "nope"}).status_code == 400


def test_deployments_of_another_users_app_are_forbidden(api, shop):
    _, artifact = shop
    assert deploy(api, artifact["digest"], as_="other").status_code == 403
    assert deploy(api, artifact["digest"], as_="reader").status_code == 403
    deployment_id = deploy(api, artifact["digest"]).json()["id"]
    assert api.get(f"/deployments/{deployment_id}", as_="other").status_code == 200
    assert api.post("/apps/shop/rollback", json={}, as_="other").status_code == 403


def test_listing_an_app_without_deployments_and_an_unknown_app(api, shop):
    empty = api.get("/apps/shop/deployments", as_="reader")
    assert empty.status_code == 200
    assert empty.json() == {"deployments": [], "next_cursor": None}
    assert api.get("/apps/ghost/deployments").status_code == 404


def test_deleting_an_app_removes_its_deployments_and_events(api, shop):
    _, artifact = shop
    deployment_id = deploy(api, artifact["digest"]).json()["id"]
    api.run(store.add_event, deployment_id, "deploying", "starting")
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    assert api.get(f"/deployments/{deployment_id}").status_code == 404
    left = api.run(lambda db: db.fetch_value("SELECT COUNT(*) AS n FROM deployment_events"))
    assert int(left) == 0


def test_apps_show_the_running_deployment_as_current(api, shop):
    app, first_artifact = shop
    running = deploy(api, first_artifact["digest"]).json()
    api.run(rollouts.mark_running, running["id"], None)
    newer = deploy(api, api.run(insert_artifact, app["id"])["digest"]).json()
    listed = api.get("/apps", as_="reader").json()["apps"][0]
    assert listed["current"]["id"] == running["id"] and listed["current"]["status"] == "running"
    assert api.get("/apps/shop").json()["current"]["id"] == running["id"]
    api.run(rollouts.supersede, [running["id"]])
    assert api.get("/apps/shop").json()["current"]["id"] == newer["id"]


def test_an_artifact_stored_for_one_app_deploys_to_another(api, shop):
    _, artifact = shop
    api.post("/apps", json={"name": "shop-prod"}, as_="deployer")
    response = api.post(
        "/deployments",
        json={"app_name": "shop-prod", "artifact_digest": artifact["digest"]},
        as_="deployer",
    )
    assert response.status_code == 201
    assert response.json()["app_name"] == "shop-prod"


def test_require_signature_checks_a_promoted_artifact_against_the_target_apps_keys(make_api):
    from aether.pack.signing import generate_keypair, sign_digest

    api = make_api(env={"AETHER_REQUIRE_SIGNATURE": "1"})
    seed, public = generate_keypair()
    staging = api.post("/apps", json={"name": "staging"}, as_="deployer").json()
    api.post("/apps", json={"name": "prod"}, as_="deployer")
    artifact = api.run(insert_artifact, staging["id"], verified=True)
    signature = sign_digest(seed, artifact["digest"])
    api.run(
        lambda db: db.execute(
            "UPDATE artifacts SET signature = :sig WHERE id = :id",
            {"sig": signature, "id": artifact["id"]},
        )
    )
    body = {"app_name": "prod", "artifact_digest": artifact["digest"]}
    refused = api.post("/deployments", json=body, as_="deployer")
    assert refused.status_code == 400 and "signature" in refused.json()["message"]
    added = api.post("/apps/prod/public-keys", json={"public_key_hex": public}, as_="deployer")
    assert added.status_code == 201
    assert api.post("/deployments", json=body, as_="deployer").status_code == 201


def test_the_node_version_is_recorded_listed_and_kept_by_a_rollback(api, shop):
    app, first_artifact = shop
    first = deploy(api, first_artifact["digest"], node_version="22").json()
    assert first["node_version"] == "22"
    api.run(rollouts.mark_running, first["id"], None)
    second = deploy(api, api.run(insert_artifact, app["id"])["digest"]).json()
    assert second["node_version"] is None  # a client that does not say
    listed = api.get("/apps/shop/deployments").json()["deployments"]
    assert [d["node_version"] for d in listed] == [None, "22"]
    api.run(rollouts.mark_running, second["id"], None)  # supersedes the first
    back = api.post("/apps/shop/rollback", json={}, as_="deployer").json()
    assert back["node_version"] == "22"
    refused = deploy(api, first_artifact["digest"], node_version="v22")
    assert refused.status_code == 400 and refused.json()["code"] == "bad_request"

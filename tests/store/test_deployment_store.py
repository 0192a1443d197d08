"""Deployment rows: concurrent idempotent creation, transitions, pagination cursors."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from aether.errors import BadRequest
from aether.store import apps, deployments, rollouts
from aether.store.clock import now_iso
from release_rows import deploy_release


async def _app_with_artifact(db):
    app = await apps.create_app(db, f"app-{uuid.uuid4().hex[:6]}", owner=None)
    digest = uuid.uuid4().hex * 2
    await db.execute(
        "INSERT INTO artifacts (id, app_id, digest, size_bytes, status, storage_key, created_at)"
        " VALUES (:id, :app, :digest, 1, 'stored', 'k', :now)",
        {"id": str(uuid.uuid4()), "app": app["id"], "digest": digest, "now": now_iso()},
    )
    return app, digest


async def test_concurrent_identical_requests_create_one_release(database):
    app, digest = await _app_with_artifact(database)
    results = await asyncio.gather(*[deploy_release(database, app["id"], digest) for _ in range(6)])
    assert sum(outcome.created for outcome in results) == 1
    assert len({outcome.deployment["id"] for outcome in results}) == 1
    assert {outcome.release["version"] for outcome in results} == {1}
    events = await deployments.list_events(database, results[0].deployment["id"])
    assert [e["phase"] for e in events] == ["pending"]


async def test_transitions_stamp_times_and_never_move_backwards(database):
    app, digest = await _app_with_artifact(database)
    row = (await deploy_release(database, app["id"], digest)).deployment
    assert await rollouts.mark_deploying(database, row["id"])
    await rollouts.mark_running(database, row["id"], "http://127.0.0.1:1")
    running = await deployments.get_deployment(database, row["id"])
    assert running["status"] == "running" and running["endpoint"] == "http://127.0.0.1:1"
    assert running["rollout_started_at"] and running["rollout_completed_at"]
    assert not await rollouts.mark_deploying(database, row["id"])  # a late duplicate
    assert (await deployments.get_deployment(database, row["id"]))["status"] == "running"
    assert await rollouts.mark_failed(database, row["id"], "crashed")
    failed = await deployments.get_deployment(database, row["id"])
    assert failed["failure_reason"] == "crashed" and failed["storage_key"] == "k"
    assert failed["rollout_started_at"] == running["rollout_started_at"]
    await rollouts.mark_running(database, row["id"], "http://127.0.0.1:2")
    assert (await deployments.get_deployment(database, row["id"]))["status"] == "failed"


@pytest.mark.parametrize("cursor", ["!!!", "bm9waXBl", ""])
def test_bad_cursors_are_bad_requests(cursor):
    with pytest.raises(BadRequest):
        deployments.decode_cursor(cursor)

"""Deployment rows: concurrent idempotent creation, status stamps, pagination cursors."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from aether.errors import BadRequest
from aether.store import apps, deployments
from aether.store.clock import now_iso


async def _app_with_artifact(db):
    app = await apps.create_app(db, f"app-{uuid.uuid4().hex[:6]}", owner=None)
    artifact_id = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO artifacts (id, app_id, digest, size_bytes, status, storage_key, created_at)"
        " VALUES (:id, :app, :digest, 1, 'stored', 'k', :now)",
        {"id": artifact_id, "app": app["id"], "digest": uuid.uuid4().hex * 2, "now": now_iso()},
    )
    return app, artifact_id


async def test_concurrent_identical_requests_create_one_deployment(database):
    app, artifact_id = await _app_with_artifact(database)
    spec = deployments.DeploymentSpec(app_id=app["id"], artifact_id=artifact_id)
    results = await asyncio.gather(
        *[deployments.create_deployment(database, spec) for _ in range(6)]
    )
    assert sum(created for _, created in results) == 1
    assert len({row["id"] for row, _ in results}) == 1
    events = await deployments.list_events(database, results[0][0]["id"])
    assert [e["phase"] for e in events] == ["pending"]


async def test_set_status_stamps_only_once_and_keeps_the_endpoint(database):
    app, artifact_id = await _app_with_artifact(database)
    row, _ = await deployments.create_deployment(
        database, deployments.DeploymentSpec(app_id=app["id"], artifact_id=artifact_id)
    )
    await deployments.set_status(database, row["id"], "deploying", endpoint="http://127.0.0.1:1")
    await deployments.set_status(database, row["id"], "running")
    first = await deployments.get_deployment(database, row["id"])
    await deployments.set_status(database, row["id"], "failed", failure_reason="crashed")
    last = await deployments.get_deployment(database, row["id"])
    assert first["endpoint"] == last["endpoint"] == "http://127.0.0.1:1"
    assert last["rollout_completed_at"] == first["rollout_completed_at"]
    assert last["failure_reason"] == "crashed" and last["storage_key"] == "k"


@pytest.mark.parametrize("cursor", ["!!!", "bm9waXBl", ""])
def test_bad_cursors_are_bad_requests(cursor):
    with pytest.raises(BadRequest):
        deployments.decode_cursor(cursor)

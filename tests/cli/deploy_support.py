"""Playing the worker's part in client tests: move deployments through the server's database."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from aether.store import open_database, rollouts

DEADLINE_SECS = 30.0


def advance(
    server: Any,
    deployment_id: str,
    status: str,
    *,
    event: tuple[str, str] | None = None,
    failure_reason: str | None = None,
    endpoint: str | None = None,
) -> None:
    """Record an event (optional) and move the deployment to ``status`` with the worker's
    own transitions (running supersedes the app's older deployments)."""

    async def write() -> None:
        db = open_database(server.server_env.get("DATABASE_URL"), server.data_dir)
        await db.open()
        try:
            if event is not None:
                await rollouts.record_event(db, deployment_id, *event)
            if status == "deploying":
                await rollouts.mark_deploying(db, deployment_id)
            elif status == "running":
                await rollouts.mark_running(db, deployment_id, endpoint)
            elif status == "failed":
                await rollouts.mark_failed(db, deployment_id, failure_reason or "")
            else:
                await rollouts.supersede(db, [deployment_id])
        finally:
            await db.close()

    asyncio.run(write())


def api_get(server: Any, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {server.admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def wait_for_deployment(server: Any, app: str) -> dict[str, Any]:
    """The app's newest deployment, once the client has registered one (polled, bounded)."""
    deadline = time.monotonic() + DEADLINE_SECS
    while time.monotonic() < deadline:
        try:
            found = api_get(server, f"/apps/{app}/deployments?limit=1")["deployments"]
        except urllib.error.HTTPError:
            found = []
        if found:
            return found[0]
        time.sleep(0.05)  # polling interval, bounded by the deadline
    raise AssertionError(f"no deployment of {app} within {DEADLINE_SECS}s")

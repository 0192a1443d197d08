"""Test support for the worker: release folders made from the dependency-free fixture app (no
download needed: they carry their marker), an event recorder, HTTP and polling helpers."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from aether.settings import WorkerSettings
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.releasedir import write_marker
from plugins.polling import eventually  # noqa: F401  (the worker tests import it from here)

FIXTURES = Path(__file__).parent / "fixtures"
PLAIN_APP = FIXTURES / "plain-app"
ATTACKER_APP = FIXTURES / "attacker"
# How a release that started in a standby says so in its `starting` event.
WARM = "started in a waiting Node.js process"


class Recorder:
    """An EventSink that remembers (phase, message) pairs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def __call__(self, phase: str, message: str) -> None:
        self.events.append((phase, message))

    def phases(self) -> list[str]:
        return [phase for phase, _ in self.events]


def worker_settings(data_dir: Path, **overrides: Any) -> WorkerSettings:
    env = {
        "AETHER_DATA_DIR": str(data_dir),
        "AETHER_ROLLOUT_TIMEOUT_SECS": "15",
        # the fixture apps listen on loopback; tests/topology runs the cross-host case
        "AETHER_WORKER_ADVERTISE_ADDR": "127.0.0.1",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return WorkerSettings.from_env(env)


def extracted_release(
    data_dir: Path,
    app: str,
    *,
    env: dict[str, str] | None = None,
    source: Path = PLAIN_APP,
    **fields: Any,
) -> Release:
    """A release of ``source`` whose folder is already in place, as after an earlier fetch."""
    deployment_id = str(uuid.uuid4())
    digest = uuid.uuid4().hex * 2
    folder = data_dir / "apps" / app / deployment_id
    shutil.copytree(source, folder)
    write_marker(folder, digest=digest, deployment_id=deployment_id, app_name=app)
    return Release(
        app_name=app,
        deployment_id=deployment_id,
        digest=digest,
        storage_key=f"artifacts/{app}/{digest}/app.tar.zst",
        compression="zstd",
        start_command=fields.pop("start_command", None),
        env=env or {},
        **fields,
    )


def http_get(url: str, *, host: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""  # nothing answering (yet)


async def get_json(url: str, *, host: str | None = None) -> tuple[int, Any]:
    status, body = await asyncio.to_thread(http_get, url, host=host)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


# --- rows, for loop tests (the upload flow is not needed: folders are staged) ----------------


async def insert_app(db: Any, name: str) -> dict[str, Any]:
    from aether.store.clock import now_iso

    row = {"id": str(uuid.uuid4()), "name": name, "now": now_iso()}
    await db.execute(
        "INSERT INTO applications (id, name, created_at) VALUES (:id, :name, :now)", row
    )
    return row


async def stage_deployment(
    db: Any,
    data_dir: Path,
    app: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    start_command: str | None = None,
    staged: bool = True,
) -> str:
    """An artifact row and a release of it (``env`` its one-off values, sealed with the
    tests' key ring, ``release_rows.TEST_RING``) with its pending deployment; with
    ``staged``, the release folder too."""
    from aether.store.clock import now_iso
    from release_rows import deploy_release

    digest = uuid.uuid4().hex * 2
    await db.execute(
        "INSERT INTO artifacts (id, app_id, digest, size_bytes, compression, status, storage_key,"
        " created_at) VALUES (:id, :app_id, :digest, 1, 'zstd', 'stored', :key, :now)",
        {
            "id": str(uuid.uuid4()),
            "app_id": app["id"],
            "digest": digest,
            "key": f"artifacts/{app['name']}/{digest}/app.tar.zst",
            "now": now_iso(),
        },
    )
    outcome = await deploy_release(db, app["id"], digest, env=env, start_command=start_command)
    deployment_id: str = outcome.deployment["id"]
    if staged:
        folder = data_dir / "apps" / app["name"] / deployment_id
        shutil.copytree(PLAIN_APP, folder)
        write_marker(folder, digest=digest, deployment_id=deployment_id, app_name=app["name"])
    return deployment_id


async def deployment(db: Any, deployment_id: str) -> dict[str, Any]:
    row = await db.fetch_one("SELECT * FROM deployments WHERE id = :id", {"id": deployment_id})
    assert row is not None
    return row


async def phases(db: Any, deployment_id: str) -> list[str]:
    rows = await db.fetch_all(
        "SELECT phase FROM deployment_events WHERE deployment_id = :id ORDER BY id",
        {"id": deployment_id},
    )
    return [r["phase"] for r in rows]


async def deploy_and_ask(runtime: Any, release: Release) -> tuple[str, Any]:
    """Deploy on a local runtime; the ``starting`` event and what the app answers at ``/``."""
    record = Recorder()
    observed = await runtime.deploy(release, record)
    assert observed.endpoint is not None
    status, seen = await get_json(observed.endpoint)
    assert status == 200, seen
    return dict(record.events)["starting"], seen

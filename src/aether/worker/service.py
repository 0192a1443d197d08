"""Running the loop for real: on its own (``aether worker``) or inside ``aether serve``.

``run_worker`` opens the database and blob store from the environment, builds the configured
runtime and reconciles until SIGTERM/SIGINT. ``serve_jobs`` gives ``aether serve`` its
background coroutines: the loop over the server's own database and blob store (unless
``--no-worker``); logs reach every replica through the database (the worker ships them).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from aether.errors import ConfigError
from aether.settings import BlobSettings, ServerSettings, WorkerSettings
from aether.worker.loop import Worker
from aether.worker.runtimes.advertise import LOOPBACK
from aether.worker.runtimes.base import Runtime

log = logging.getLogger("aether.worker")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
ServeJob = Callable[[Any], Awaitable[None]]


def create_runtime(settings: WorkerSettings, environ: Mapping[str, str]) -> Runtime:
    """The runtime ``AETHER_RUNTIME`` names (``local`` by default)."""
    if settings.runtime == "kubernetes":
        from aether.worker.runtimes.kubernetes import KubernetesRuntime

        return KubernetesRuntime.from_env(settings, environ)
    from aether.worker.runtimes.local import LocalRuntime

    return LocalRuntime(settings)


def _attach_blobs(runtime: Runtime, blobs: Any) -> None:
    attach = getattr(runtime, "use_blob_store", None)
    if attach is not None:
        attach(blobs)


def serve_jobs(environ: Mapping[str, str], *, run_loop: bool) -> list[ServeJob]:
    """Background coroutines for ``aether serve`` (each receives the ServerState)."""
    if not run_loop:
        return []
    settings = WorkerSettings.from_env(environ)
    # The worker inside `aether serve` shares its host with the proxy that reaches its apps:
    # loopback, unless an address is configured (other replicas proxying to it).
    settings = replace(settings, advertise_addr=settings.advertise_addr or LOOPBACK)
    runtime = create_runtime(settings, environ)

    async def worker_in_server(state: Any) -> None:
        _attach_blobs(runtime, state.blobs)
        worker = Worker(
            state.db, runtime, settings, public_url=state.public_url, keyring=state.keyring
        )
        log.info("worker started in-process (%s runtime)", runtime.name)
        await worker.run()

    return [worker_in_server]


async def run_worker(environ: Mapping[str, str], *, once: bool = False) -> None:
    """``aether worker``: reconcile against the configured database until signalled."""
    from aether.blobs import open_blob_store
    from aether.store import open_database
    from aether.store.migrate import pending

    settings = WorkerSettings.from_env(environ)
    server = ServerSettings.from_env(environ)
    public_url = (server.public_url or DEFAULT_PUBLIC_URL).rstrip("/")
    db = open_database(server.database_url, server.data_dir)
    await db.open()
    try:
        if await pending(db):
            raise ConfigError("the database schema is not migrated; run `aether migrate` first")
        keyring = await _checked_keyring(db, settings)
        blobs = open_blob_store(BlobSettings.from_env(environ), public_url=public_url)
        await blobs.open()
        try:
            runtime = create_runtime(settings, environ)
            _attach_blobs(runtime, blobs)
            worker = Worker(db, runtime, settings, public_url=public_url, keyring=keyring)
            await (_one_pass(worker) if once else _until_signalled(worker))
        finally:
            await blobs.close()
    finally:
        await db.close()


async def _checked_keyring(db: Any, settings: WorkerSettings) -> Any:
    """The ring that opens releases' config values, refused at start (not at the first
    rollout) when it lacks the key the database seals with."""
    from aether.sealing import KeyRing, key_source
    from aether.store.secret_keys import ensure_primary

    secrets = settings.secrets
    ring = KeyRing(key_source(secrets.keys, secrets.key_file, create=False))
    await ensure_primary(db, ring)
    return ring


async def _one_pass(worker: Worker) -> None:
    try:
        await worker.runtime.start()
        await worker.run_once(wait=True)
    finally:
        await worker.runtime.stop()


async def _until_signalled(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    log.info("worker %s started (%s runtime)", worker.holder, worker.runtime.name)
    try:
        await worker.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("worker stopped")


def local_runtime_report(environ: Mapping[str, str]) -> dict[str, object]:
    """``aether worker --isolation``: what the local runtime would give apps on this host."""
    from aether.worker.runtimes.local import LocalRuntime

    return LocalRuntime(WorkerSettings.from_env(environ)).capabilities()


async def stop_local_apps(environ: Mapping[str, str]) -> int:
    """``aether worker --stop-apps``: stop every app process started from this data dir; how
    many supervisors were running."""
    from aether.worker.runtimes.adoption import running_supervisors
    from aether.worker.runtimes.local import LocalRuntime

    runtime = LocalRuntime(WorkerSettings.from_env(environ))
    count = len(running_supervisors(runtime.apps_dir))
    await runtime.stop_apps()
    return count

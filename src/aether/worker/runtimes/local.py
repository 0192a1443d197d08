"""The local runtime: each app is one supervised Node.js process on its own port.

A deploy prepares the release folder (download, verify, extract), starts the start command with
``PORT`` set to a free port, waits until it answers HTTP, records ``healthy`` (the cutover point:
``observe`` already reports the new release, so the loop marks it running and the Host-header
proxy switches), then stops the previous process in the background (after a short drain), so
the app's next deployment never waits for it. A release that exits or never answers is
stopped and the previous one keeps serving. Processes never outlive the runtime: on a server
restart the loop starts running deployments again from their extracted folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aether.errors import AetherError, BadRequest
from aether.settings import WorkerSettings
from aether.worker.runtimes.base import EventSink, LogLine, Observed, Release, Runtime
from aether.worker.runtimes.health import free_port
from aether.worker.runtimes.layers import release_layer, unused_layers
from aether.worker.runtimes.logfiles import LogWriter, log_path_for, prune_logs, read_logs
from aether.worker.runtimes.nodes import node_folder
from aether.worker.runtimes.process import AppProcess
from aether.worker.runtimes.releasedir import prepare
from aether.worker.runtimes.startcmd import process_env, shell_argv, start_script
from aether.worker.runtimes.trash import discard, release_folders

if TYPE_CHECKING:
    from aether.blobs import BlobStore

log = logging.getLogger(__name__)
STOP_GRACE_SECS = 10.0
# Requests already forwarded to the old process get this long to finish before SIGTERM.
DRAIN_SECS = 0.3
# Log files of this many of an app's most recent deployments are kept.
KEEP_LOGS = 10


@dataclass
class _Serving:
    deployment_id: str
    process: AppProcess
    folder: Path


class LocalRuntime(Runtime):
    name = "local"

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        blobs: BlobStore | None = None,
        base_env: Mapping[str, str] | None = None,
        stop_grace_secs: float = STOP_GRACE_SECS,
    ) -> None:
        self.settings = settings
        self.apps_dir = settings.data_dir / "apps"
        self.blobs = blobs
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.stop_grace_secs = stop_grace_secs
        self._serving: dict[str, _Serving] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retiring: dict[str, set[asyncio.Task[None]]] = {}

    def use_blob_store(self, blobs: BlobStore) -> None:
        """Attach the blob store once it is open (``serve`` opens it in its lifespan)."""
        self.blobs = blobs

    def _lock(self, app_name: str) -> asyncio.Lock:
        return self._locks.setdefault(app_name, asyncio.Lock())

    async def deploy(self, release: Release, record: EventSink) -> Observed:
        async with self._lock(release.app_name):
            deadline = time.monotonic() + self.settings.rollout_timeout_secs
            folder = await prepare(
                release,
                self.apps_dir,
                self.blobs,
                record,
                require_signature=self.settings.require_signature,
            )
            process = self._new_process(release, folder)
            command = release.start_command or start_script(folder)
            await record("starting", f"{command} on port {process.port}")
            await self._start_healthy(process, deadline)
            previous = self._serving.get(release.app_name)
            self._serving[release.app_name] = _Serving(release.deployment_id, process, folder)
            process.supervise(record)
            await record("healthy", f"answering on {process.endpoint}")
            if previous is not None and previous.process is not process:
                self._retire_later(release.app_name, previous, record)
            return Observed(release.deployment_id, True, process.endpoint)

    def _new_process(self, release: Release, folder: Path) -> AppProcess:
        node_dir = node_folder(release.node_major, self.settings.node_binaries, self.base_env)
        port = free_port()
        command = release.start_command or start_script(folder)
        env = process_env(
            self.base_env,
            folder,
            port=port,
            deployment_id=release.deployment_id,
            digest=release.digest,
            app_env=release.env,
            node_dir=node_dir,
        )
        logs_dir = self.apps_dir / release.app_name / "logs"
        log_path = log_path_for(logs_dir, release.deployment_id)
        if not log_path.exists():
            prune_logs(logs_dir, keep=KEEP_LOGS - 1)
        return AppProcess(
            argv=shell_argv(command),
            cwd=folder,
            env=env,
            port=port,
            log_writer=LogWriter(log_path),
            health_path=release.health_path,
        )

    async def _start_healthy(self, process: AppProcess, deadline: float) -> None:
        """Spawn and wait for health; on any failure (or cancellation) stop it again."""
        try:
            await process.spawn()
            await process.wait_healthy(deadline)
        except BaseException:
            await process.stop(self.stop_grace_secs)
            process.log_writer.close()
            raise

    def _retire_later(self, app_name: str, previous: _Serving, record: EventSink) -> None:
        task = asyncio.create_task(self._retire(app_name, previous, record))
        tasks = self._retiring.setdefault(app_name, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)

    async def _retire(self, app_name: str, previous: _Serving, record: EventSink) -> None:
        with contextlib.suppress(AetherError):  # events are best effort once the app moved on
            await record("cutover", f"stopping the previous release {previous.deployment_id}")
        try:
            await asyncio.sleep(DRAIN_SECS)
        finally:  # even when cancelled: a process never outlives its runtime
            code = await previous.process.stop(self.stop_grace_secs)
            previous.process.log_writer.close()
        with contextlib.suppress(AetherError):
            await record("stopped", f"previous release {previous.deployment_id} exited ({code})")
        async with self._lock(app_name):  # not while a deploy prepares its folder
            app_dir = self.apps_dir / app_name
            serving = self._serving.get(app_name)
            if serving is None or serving.folder != previous.folder:
                discard(app_dir, [previous.folder])
            in_use = {release_layer(folder) for folder in release_folders(app_dir)}
            discard(app_dir, unused_layers(app_dir / "layers", {x for x in in_use if x}))

    async def _wait_retired(self, app_name: str | None = None) -> None:
        names = [app_name] if app_name is not None else list(self._retiring)
        tasks = [task for name in names for task in self._retiring.get(name, ())]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def observe(self, app_name: str) -> Observed | None:
        serving = self._serving.get(app_name)
        if serving is None:
            return None
        process = serving.process
        return Observed(serving.deployment_id, process.alive, process.endpoint)

    async def remove(self, app_name: str) -> None:
        await self._wait_retired(app_name)  # before the lock: retiring takes it to clean up
        async with self._lock(app_name):
            serving = self._serving.pop(app_name, None)
            if serving is not None:
                await serving.process.stop(self.stop_grace_secs)
                serving.process.log_writer.close()
            await asyncio.to_thread(shutil.rmtree, self.apps_dir / app_name, True)

    def logs(
        self,
        app_name: str,
        *,
        tail: int | None = None,
        since: str | None = None,
        follow: bool = False,
        cursor: str | None = None,
        container: str | None = None,
    ) -> AsyncIterator[LogLine]:
        if container not in (None, "app"):
            raise BadRequest(
                f"container={container!r}: the local runtime runs one process per app ('app')"
            )
        logs_dir = self.apps_dir / app_name / "logs"
        return read_logs(logs_dir, tail=tail, since=since, follow=follow, cursor=cursor)

    def process_of(self, app_name: str) -> AppProcess | None:
        """The process serving the app (tests and diagnostics)."""
        serving = self._serving.get(app_name)
        return serving.process if serving else None

    async def stop(self) -> None:
        """Stop every process (they do not outlive the worker)."""
        serving, self._serving = list(self._serving.values()), {}
        await asyncio.gather(
            *(s.process.stop(self.stop_grace_secs) for s in serving),
            self._wait_retired(),
            return_exceptions=True,
        )
        for s in serving:
            with contextlib.suppress(OSError, ValueError):
                s.process.log_writer.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("stopping a previous release failed: %s", task.exception())

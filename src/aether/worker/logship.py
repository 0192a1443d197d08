"""Shipping apps' output into the database, so every API replica reads the same lines.

One task per app this worker holds reads the runtime's log feed (local: the app's log files on
this host; Kubernetes: the pod log API) from the position last committed for its source and
hands each batch to :func:`aether.store.logs.ship`, which stores the lines and moves the
position in one transaction. The app never waits: the runtime writes its output without the
shipper (the local supervisor to files, the kubelet to its own), and a feed that falls behind
skips lines and says how many (a ``notice`` line, ``log_lines_dropped_total``). While the
database is unreachable a task backs off and resumes from the committed position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from aether.errors import AetherError
from aether.store import logs as log_store
from aether.store.database import Database
from aether.worker.runtimes.base import LogBatch, Runtime

log = logging.getLogger("aether.worker")
SYNC_SECS = 0.5  # how often the set of held apps is compared with the running tasks
RETRY_SECS = 1.0  # after a failed batch


class LogShipper:
    def __init__(
        self,
        db: Database,
        runtime: Runtime,
        held_apps: Callable[[], Mapping[str, str]],
    ) -> None:
        self.db = db
        self.runtime = runtime
        self.held_apps = held_apps  # app id -> name, the apps this worker holds now
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                self.sync()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), SYNC_SECS)
        finally:
            await self.close()

    def sync(self) -> None:
        """Start a task for each newly held app, end those of apps no longer held."""
        held = dict(self.held_apps())
        for app_id in [a for a in self._tasks if a not in held or self._tasks[a].done()]:
            self._tasks.pop(app_id).cancel()
        for app_id, name in held.items():
            if app_id not in self._tasks:
                self._tasks[app_id] = asyncio.create_task(self._ship(app_id, name))

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _ship(self, app_id: str, name: str) -> None:
        source = self.runtime.log_source(name)
        while True:
            try:
                await self._ship_from_committed(app_id, name, source)
            except AetherError as exc:
                log.warning("shipping %s's logs paused: %s", name, exc.message)
            await asyncio.sleep(RETRY_SECS)

    async def _ship_from_committed(self, app_id: str, name: str, source: str) -> None:
        position = await log_store.source_position(self.db, source)
        feed = self.runtime.log_feed(name, position)
        try:
            async for batch in feed:
                if not await self._store(app_id, source, position, batch):
                    return  # another shipper moved the source: start again from there
                position = batch.position
        finally:
            await feed.aclose()  # type: ignore[attr-defined]

    async def _store(self, app_id: str, source: str, after: str | None, batch: LogBatch) -> bool:
        return await log_store.ship(
            self.db,
            log_store.Batch(source, app_id, after, batch.position, batch.lines, batch.dropped),
        )

"""``serve``'s log retention: every minute, each app's log lines past the age and byte limits
go (``AETHER_LOG_RETENTION_DAYS``, ``AETHER_LOG_RETENTION_BYTES``; PostgreSQL drops whole daily
partitions), and ``log_lines_dropped_total`` is refreshed from the database, where workers
count what they had to skip. Every replica runs it; the deletes are idempotent."""

from __future__ import annotations

import asyncio
import logging

from aether.errors import AetherError
from aether.server.metrics import LOG_LINES_DROPPED
from aether.server.state import ServerState
from aether.store import logs as log_store

log = logging.getLogger("aether.server")
RETENTION_SECS = 60.0


async def log_retention_loop(state: ServerState) -> None:
    policy = log_store.Retention(
        max_age_secs=state.settings.log_retention_days * 86400,
        max_bytes_per_app=state.settings.log_retention_bytes,
    )
    while not state.stopping.is_set():
        try:
            await log_store.enforce_retention(state.db, policy)
            LOG_LINES_DROPPED.value = await log_store.dropped_total(state.db)
        except AetherError as exc:  # the database is down: next time
            log.warning("log retention skipped: %s", exc.message)
        await asyncio.sleep(RETENTION_SECS)

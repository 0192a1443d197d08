"""``serve``'s log retention loop: it applies the age and byte limits and publishes the lines
workers dropped as ``log_lines_dropped_total`` on ``/metrics`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aether.server.log_retention import log_retention_loop
from aether.server.metrics import LOG_LINES_DROPPED, exposition
from aether.settings import ServerSettings
from aether.store import apps as app_store
from aether.store import logs as log_store
from aether.store.clock import now_iso


async def test_the_loop_publishes_dropped_lines_and_applies_the_byte_budget(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)
    lines = [log_store.NewLine(now_iso(), "d", "i", "stdout", f"{n:04d}") for n in range(10)]
    assert await log_store.ship(database, log_store.Batch("s", app["id"], None, "1", lines, 7))
    settings = ServerSettings.from_env({"AETHER_LOG_RETENTION_BYTES": "10"})
    state = SimpleNamespace(settings=settings, db=database, stopping=asyncio.Event())
    LOG_LINES_DROPPED.value = 0  # (a process-wide collector: start from a known figure)
    task = asyncio.create_task(log_retention_loop(state))  # type: ignore[arg-type]
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while b"log_lines_dropped_total 7.0" not in exposition()[0]:
            assert asyncio.get_running_loop().time() < deadline, exposition()[0]
            await asyncio.sleep(0.05)
    finally:
        state.stopping.set()
        task.cancel()
    # (the figure is read after the retention pass, so the pass is done)
    kept = await log_store.read_after(database, app["id"], 0, limit=100)
    assert [line for *_, line in kept] == ["0008", "0009"]  # 5 bytes each with the newline

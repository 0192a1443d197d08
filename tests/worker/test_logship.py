"""The log shipper: a local runtime's log files into the shared table, exactly once across
restarts of the shipper, and a feed that fell behind skips ahead and says how many lines it
dropped. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aether.store import apps as app_store
from aether.store import logs as log_store
from aether.worker.logship import LogShipper
from aether.worker.runtimes.local import LocalRuntime
from aether.worker.runtimes.logfeed import read_batch
from aether.worker.runtimes.logfiles import LogWriter


def write(runtime: LocalRuntime, app: str, deployment_id: str, *lines: str) -> None:
    writer = LogWriter(runtime.apps_dir / app / "logs", deployment_id)
    for line in lines:
        writer.write("stdout", line)
    writer.close()


async def stored(db, app_id: str, count: int, timeout: float = 10.0) -> list[str]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        rows = await log_store.read_after(db, app_id, 0, limit=10_000)
        if len(rows) >= count or time.monotonic() > deadline:
            return [line for *_, line in rows]
        await asyncio.sleep(0.05)


async def test_lines_are_shipped_once_across_shipper_restarts(database, runtime) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "hello", owner=None)
    held = {app["id"]: "hello"}
    write(runtime, "hello", "dep-1", "a", "b")
    stop = asyncio.Event()
    shipper = LogShipper(database, runtime, lambda: held)
    task = asyncio.create_task(shipper.run(stop))
    assert await stored(database, app["id"], 2) == ["a", "b"]
    write(runtime, "hello", "dep-2", "c")
    assert await stored(database, app["id"], 3) == ["a", "b", "c"]
    stop.set()
    await task
    write(runtime, "hello", "dep-2", "d")  # written while no shipper runs
    stop = asyncio.Event()
    task = asyncio.create_task(LogShipper(database, runtime, lambda: held).run(stop))
    assert await stored(database, app["id"], 4) == ["a", "b", "c", "d"]
    await asyncio.sleep(0.5)  # a repeat would show up by now
    assert await stored(database, app["id"], 5, timeout=0) == ["a", "b", "c", "d"]
    stop.set()
    await task
    rows = await log_store.read_after(database, app["id"], 0, limit=10)
    assert [deployment for _, _, deployment, *_ in rows] == ["dep-1", "dep-1", "dep-2", "dep-2"]
    assert all(instance for _, _, _, instance, *_ in rows)


def test_a_feed_far_behind_skips_ahead_and_counts(tmp_path: Path) -> None:
    logs_dir = tmp_path / "logs"
    writer = LogWriter(logs_dir, "dep-1")
    for index in range(5000):
        writer.write("stdout", f"line {index:05d} " + "x" * 50)
    writer.close()
    batch = read_batch(logs_dir, None, max_lag_bytes=64 * 1024)
    assert batch.dropped > 4000
    assert batch.lines[-1].line.startswith("line 04999")
    assert batch.dropped + len(batch.lines) == 5000
    again = read_batch(logs_dir, batch.position, max_lag_bytes=64 * 1024)
    assert (again.lines, again.dropped, again.position) == ([], 0, batch.position)


def test_a_batch_is_bounded_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    logs_dir = tmp_path / "logs"
    writer = LogWriter(logs_dir, "dep-1")
    for index in range(3000):
        writer.write("stdout", f"{index:05d}")
    writer.close()
    seen: list[str] = []
    position = None
    for _ in range(100):
        batch = read_batch(logs_dir, position, max_bytes=20_000)
        if not batch.lines:
            break
        assert len(batch.lines) < 3000
        seen.extend(line.line for line in batch.lines)
        position = batch.position
    assert seen == [f"{index:05d}" for index in range(3000)]

"""The shared log table: numbering under the app's lock, exactly-once batches, daily
partitions on PostgreSQL and retention by age and bytes, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from aether.store import apps as app_store
from aether.store import logs as log_store


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def ship(db, app_id, source, after, position, *texts, ts=None, dropped=0):  # type: ignore[no-untyped-def]
    lines = [
        log_store.NewLine(ts or stamp(datetime.now(UTC)), "d", "i", "stdout", t) for t in texts
    ]
    return await log_store.ship(
        db, log_store.Batch(source, app_id, after, position, lines, dropped)
    )


async def all_lines(db, app_id):  # type: ignore[no-untyped-def]
    return await log_store.read_after(db, app_id, 0, limit=10_000)


async def test_a_batch_from_a_stale_position_stores_nothing(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)
    assert await ship(database, app["id"], "s", None, "p1", "a", "b")
    assert not await ship(database, app["id"], "s", None, "p1", "a", "b")  # a second shipper
    assert await ship(database, app["id"], "s", "p1", "p2", "c")
    assert [(seq, line) for seq, *_, line in await all_lines(database, app["id"])] == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
    ]


async def test_concurrent_sources_of_one_app_get_one_gapless_sequence(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)

    async def source(name: str) -> None:
        after = None
        for index in range(10):
            position = f"{name}-{index}"
            assert await ship(database, app["id"], name, after, position, f"{name}{index}")
            after = position

    await asyncio.gather(source("x"), source("y"), source("z"))
    seqs = [seq for seq, *_ in await all_lines(database, app["id"])]
    assert seqs == list(range(1, 31))
    head = await log_store.stream_head(database, app["id"])
    assert head is not None and head["last_seq"] == 30


async def test_retention_by_age_and_bytes(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)
    now = datetime.now(UTC)
    old = stamp(now - timedelta(days=10))
    assert await ship(database, app["id"], "s", None, "1", "ancient", ts=old)
    assert await ship(database, app["id"], "s", "1", "2", *(f"{i:04d}" for i in range(10)))
    policy = log_store.Retention(max_age_secs=7 * 86400, max_bytes_per_app=5 * 5)
    await log_store.enforce_retention(database, policy, now=now)
    kept = [line for *_, line in await all_lines(database, app["id"])]
    assert kept == ["0005", "0006", "0007", "0008", "0009"]  # 5 bytes each with the newline
    if database.dialect == "postgresql":
        names = {
            r["relname"]
            for r in await database.fetch_all(
                "SELECT relname FROM pg_class WHERE relname LIKE 'log_lines_d%'"
            )
        }
        assert f"log_lines_d{log_store.day_of(old)}" not in names  # dropped whole
        assert f"log_lines_d{log_store.day_of(stamp(now))}" in names


async def test_any_text_survives_the_batch_writer(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)
    texts = ["tab\there", "back\\slash \\N", "cr\rlf\n", "nul\x00byte", "é ✓ 🚀", ""]
    assert await ship(database, app["id"], "s", None, "1", *texts)
    stored = [line for *_, line in await all_lines(database, app["id"])]
    assert stored == [t.replace("\x00", "\ufffd") for t in texts]


async def test_the_byte_budget_keeps_exactly_the_newest_lines_that_fit(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)
    after = None
    for batch in range(7):  # several batches: a sequence with many lines to search
        position = str(batch)
        texts = [f"{batch}{index:03d}" for index in range(100)]  # 5 bytes with the newline
        assert await ship(database, app["id"], "s", after, position, *texts)
        after = position
    for budget, kept in ((5 * 400, 400), (5 * 333, 333), (5 * 333, 333), (1, 1)):
        policy = log_store.Retention(max_age_secs=86400, max_bytes_per_app=budget)
        await log_store.enforce_retention(database, policy)
        lines = await all_lines(database, app["id"])
        # the lines that end within the newest `budget` bytes (5 bytes each with the newline)
        assert [seq for seq, *_ in lines] == list(range(701 - kept, 701)), budget


async def test_destroying_an_app_deletes_its_lines_only(database) -> None:  # type: ignore[no-untyped-def]
    doomed = await app_store.create_app(database, "web", owner=None)
    kept = await app_store.create_app(database, "api", owner=None)
    assert await ship(database, doomed["id"], "s", None, "1", "secret output")
    assert await ship(database, kept["id"], "t", None, "1", "other output")
    await app_store.destroy_app(database, doomed["id"])
    assert await all_lines(database, doomed["id"]) == []
    assert [line for *_, line in await all_lines(database, kept["id"])] == ["other output"]


async def test_a_stored_batch_notifies_its_app_on_postgresql(database) -> None:  # type: ignore[no-untyped-def]
    if database.dialect != "postgresql":
        pytest.skip("SQLite has no notifications: followers poll")
    app = await app_store.create_app(database, "web", owner=None)
    listening = asyncio.Event()
    heard: list[str] = []

    async def listen() -> None:
        async for payload in database.listen(log_store.NOTIFY_CHANNEL, listening.set):
            heard.append(payload)
            return

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(listening.wait(), 10)
    assert await ship(database, app["id"], "s", None, "p1", "a")
    await asyncio.wait_for(listener, 10)
    assert heard == [app["id"]]

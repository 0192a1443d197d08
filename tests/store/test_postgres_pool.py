"""The PostgreSQL connection limit: callers beyond it wait for a connection, give up with
ServiceUnavailable after the timeout, and leave no place taken when they give up or are
cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from aether.errors import ServiceUnavailable
from aether.store.postgres import PostgresDatabase

pytestmark = pytest.mark.postgres


@contextlib.asynccontextmanager
async def one_connection_held(url: str, *, timeout: float):
    """A database limited to one connection, which a transaction holds until the block ends."""
    db = PostgresDatabase(url, max_size=1, timeout=timeout)
    await db.open()
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.transaction() as tx:
            await tx.fetch_all("SELECT 1 AS one")
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    try:
        await held.wait()
        yield db, release
    finally:
        release.set()
        await holder
        await db.close()


async def test_a_caller_beyond_the_limit_gets_the_connection_once_it_is_free(fresh_postgres_url):
    async with one_connection_held(fresh_postgres_url, timeout=30.0) as (db, release):
        waiter = asyncio.create_task(db.fetch_value("SELECT 2 AS two"))
        release.set()
        assert await waiter == 2


async def test_a_caller_beyond_the_limit_gives_up_after_the_timeout(fresh_postgres_url):
    async with one_connection_held(fresh_postgres_url, timeout=0.2) as (db, release):
        with pytest.raises(ServiceUnavailable, match="pool timeout"):
            await db.fetch_value("SELECT 1 AS one")
        cancelled = asyncio.create_task(db.fetch_value("SELECT 1 AS one"))
        await asyncio.sleep(0)  # let it start waiting, then cancel it
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        release.set()
        # With one place, a place lost to the timeout or the cancellation would make these
        # wait out the timeout and fail.
        results = await asyncio.gather(*(db.fetch_value("SELECT 1 AS one") for _ in range(3)))
        assert results == [1, 1, 1]


def _allow_connections(url: str, allowed: bool) -> None:
    import psycopg

    admin_url, dbname = url.rsplit("/", 1)[0] + "/postgres", url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allowed).lower()}')


async def test_callers_that_time_out_or_are_cancelled_while_connecting_free_their_place(
    fresh_postgres_url,
):
    _allow_connections(fresh_postgres_url, False)
    db = PostgresDatabase(fresh_postgres_url, max_size=1, timeout=0.3)
    await db.open()
    try:
        for _ in range(2):
            with pytest.raises(ServiceUnavailable, match="pool timeout"):
                await db.fetch_value("SELECT 1 AS one")
        cancelled = asyncio.create_task(db.fetch_value("SELECT 1 AS one"))
        await asyncio.sleep(0)  # let it start waiting for a connection, then cancel it
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        _allow_connections(fresh_postgres_url, True)
        # The pool reconnects with a backoff; a lost place would fail every attempt.
        deadline = time.monotonic() + 30
        while True:
            try:
                assert await db.fetch_value("SELECT 1 AS one") == 1
                break
            except ServiceUnavailable:
                assert time.monotonic() < deadline, "no connection after PostgreSQL came back"
    finally:
        _allow_connections(fresh_postgres_url, True)
        await db.close()

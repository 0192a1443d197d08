"""PostgreSQL through psycopg 3 and an async connection pool (the only psycopg import)."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import psycopg.sql
import psycopg_pool
from psycopg.rows import dict_row

from aether.errors import Conflict, InternalError, ServiceUnavailable
from aether.store.database import Database, DuplicateKey, Executor, Params, Row, to_pyformat

# A connection used less than this long ago is handed out again without a liveness check.
RECENTLY_USED_SECS = 1.0
_last_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


async def _check_unless_recent(conn: psycopg.AsyncConnection[Any]) -> None:
    if time.monotonic() - _last_used.get(conn, float("-inf")) < RECENTLY_USED_SECS:
        return
    await psycopg_pool.AsyncConnectionPool.check_connection(conn)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, *, max_size: int = 10, timeout: float = 5.0) -> None:
        self.url = url
        self.pool = psycopg_pool.AsyncConnectionPool(
            url,
            open=False,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            # A connection broken by a server restart is replaced instead of handed out; the
            # check costs a round trip, so it is skipped for one that was in use moments ago.
            check=_check_unless_recent,
            kwargs={"autocommit": True, "row_factory": dict_row},
        )

    async def open(self) -> None:
        try:
            await self.pool.open(wait=False)
        except psycopg.Error as exc:
            raise ServiceUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self.pool.connection() as conn:
                try:
                    yield conn
                finally:
                    _last_used[conn] = time.monotonic()
        except psycopg_pool.PoolTimeout as exc:
            raise ServiceUnavailable("PostgreSQL is not reachable (pool timeout)") from exc

    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]:
        async with self.connection() as conn:
            return await _fetch_all(conn, sql, params)

    async def execute(self, sql: str, params: Params = None) -> int:
        async with self.connection() as conn:
            return await _execute(conn, sql, params)

    async def listen(
        self, channel: str, on_listening: Callable[[], None] | None = None
    ) -> AsyncIterator[str]:
        """Yield the payload of every NOTIFY on ``channel``, on a dedicated connection outside
        the pool (LISTEN holds its connection); ServiceUnavailable when it drops.
        ``on_listening`` runs once LISTEN is in effect: notifications sent before it are lost,
        so a caller catches up on what it may have missed from there."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            raise ServiceUnavailable(f"cannot connect to PostgreSQL to LISTEN: {exc}") from exc
        try:
            with _pg_errors():
                await conn.execute(
                    psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel))
                )
                if on_listening is not None:
                    on_listening()
                async for notify in conn.notifies():
                    yield notify.payload
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self.connection() as conn:
            with _pg_errors():
                async with conn.transaction():
                    yield _PgTransaction(conn)


class _PgTransaction(Executor):
    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]:
        return await _fetch_all(self.conn, sql, params)

    async def execute(self, sql: str, params: Params = None) -> int:
        return await _execute(self.conn, sql, params)


async def _fetch_all(conn: psycopg.AsyncConnection[Any], sql: str, params: Params) -> list[Row]:
    with _pg_errors():
        cursor = await conn.execute(to_pyformat(sql), dict(params or {}))
        # pgresult.nfields answers "did it return rows?" without building the description's
        # column objects (the row factory builds them once anyway).
        result = cursor.pgresult
        if result is None or result.nfields == 0:
            return []
        return await cursor.fetchall()  # dict_row: plain dicts already


async def _execute(conn: psycopg.AsyncConnection[Any], sql: str, params: Params) -> int:
    with _pg_errors():
        cursor = await conn.execute(to_pyformat(sql), dict(params or {}))
        return cursor.rowcount


@contextlib.contextmanager
def _pg_errors() -> Any:
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise DuplicateKey(str(exc).splitlines()[0]) from exc
    except psycopg.errors.IntegrityError as exc:
        raise Conflict(f"constraint violated: {str(exc).splitlines()[0]}") from exc
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(f"PostgreSQL unavailable: {str(exc).splitlines()[0]}") from exc
    except psycopg.Error as exc:
        raise InternalError(f"database error: {str(exc).splitlines()[0]}") from exc

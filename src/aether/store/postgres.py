"""PostgreSQL through psycopg 3 and an async connection pool (the only psycopg import).

Plain statements (``fetch_all``/``execute`` outside a transaction) take a connection straight
from the pool and run on a cursor the connection keeps: the API runs one such statement per
request, and a pool context manager, a fresh cursor and a dict per row through psycopg's row
factory cost more Python time than the statement itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg
import psycopg.sql
import psycopg_pool
from psycopg.rows import tuple_row

from aether.errors import AetherError, Conflict, InternalError, ServiceUnavailable
from aether.store.database import Database, DuplicateKey, Executor, Params, Row

# A connection used less than this long ago is handed out again without a liveness check.
RECENTLY_USED_SECS = 1.0
# What is left of the timeout after waiting for a slot, at least (the pool needs a positive one).
MIN_POOL_WAIT_SECS = 0.05
_NO_PARAMS: dict[str, Any] = {}
_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``:name`` → ``%(name)s`` (and a literal ``%`` → ``%%``) for psycopg."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


class PooledConnection(psycopg.AsyncConnection[Any]):
    """A pool connection that remembers when it was last given back and keeps one cursor
    (rows as tuples) for plain statements."""

    last_used = float("-inf")
    _statements: psycopg.AsyncCursor[Any] | None = None

    def statements(self) -> psycopg.AsyncCursor[Any]:
        cursor = self._statements
        if cursor is None or cursor.closed:
            cursor = self._statements = self.cursor(row_factory=tuple_row)
        return cursor


async def _check_unless_recent(conn: PooledConnection) -> None:
    if time.monotonic() - conn.last_used < RECENTLY_USED_SECS:
        return
    await psycopg_pool.AsyncConnectionPool.check_connection(conn)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, *, max_size: int = 10, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        # Callers beyond max_size queue here, not in the pool: a waiter on a semaphore is one
        # future, where the pool's waiting client costs a task, a condition and a timer, which
        # under load added up to a sixth of a request's CPU time.
        self._slots = asyncio.Semaphore(max_size)
        self.pool = psycopg_pool.AsyncConnectionPool(
            url,
            open=False,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            # A connection broken by a server restart is replaced instead of handed out; the
            # check costs a round trip, so it is skipped for one that was in use moments ago.
            check=_check_unless_recent,
            connection_class=PooledConnection,
            kwargs={"autocommit": True, "row_factory": tuple_row},
        )

    async def open(self) -> None:
        try:
            await self.pool.open(wait=False)
        except psycopg.Error as exc:
            raise ServiceUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[PooledConnection]:
        conn = await self._getconn()
        try:
            async with conn:  # commit, or roll back on an error, as the pool's own would
                yield conn
        finally:
            await self._putconn(conn)

    async def _getconn(self) -> PooledConnection:
        """A connection within ``timeout`` seconds, else ServiceUnavailable."""
        started = time.monotonic()
        try:
            if self._slots.locked():
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
        except TimeoutError as exc:
            raise ServiceUnavailable("PostgreSQL is not reachable (pool timeout)") from exc
        try:
            left = self.timeout - (time.monotonic() - started)
            return await self.pool.getconn(timeout=max(left, MIN_POOL_WAIT_SECS))
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, psycopg_pool.PoolTimeout):
                raise ServiceUnavailable("PostgreSQL is not reachable (pool timeout)") from exc
            raise

    async def _putconn(self, conn: PooledConnection) -> None:
        conn.last_used = time.monotonic()
        try:
            await self.pool.putconn(conn)
        finally:
            self._slots.release()

    # Autocommit statements need no transaction handling on the way back: the pool itself
    # rolls back and discards a connection left in a transaction or broken.
    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]:
        conn = await self._getconn()
        try:
            return await _fetch_all(conn.statements(), sql, params)
        finally:
            await self._putconn(conn)

    async def fetch_tuples(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        conn = await self._getconn()
        try:
            return await _fetch_tuples(conn.statements(), sql, params)
        finally:
            await self._putconn(conn)

    async def execute(self, sql: str, params: Params = None) -> int:
        conn = await self._getconn()
        try:
            return await _execute(conn.statements(), sql, params)
        finally:
            await self._putconn(conn)

    async def copy_columns(
        self, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]
    ) -> None:
        async with self.transaction() as tx:
            await tx.copy_columns(table, columns, values)

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

    def __init__(self, conn: PooledConnection) -> None:
        self.conn = conn

    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]:
        return await _fetch_all(self.conn.statements(), sql, params)

    async def fetch_tuples(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        return await _fetch_tuples(self.conn.statements(), sql, params)

    async def execute(self, sql: str, params: Params = None) -> int:
        return await _execute(self.conn.statements(), sql, params)

    async def copy_columns(
        self, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]
    ) -> None:
        statement = psycopg.sql.SQL("COPY {} ({}) FROM STDIN").format(
            psycopg.sql.Identifier(table),
            psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, columns)),
        )
        with _pg_errors():
            async with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
                await copy.write(_copy_text(values))


async def _fetch_tuples(
    cursor: psycopg.AsyncCursor[Any], sql: str, params: Params
) -> list[tuple[Any, ...]]:
    with _pg_errors():
        await cursor.execute(to_pyformat(sql), _NO_PARAMS if params is None else params)
        result = cursor.pgresult
        if result is None or result.nfields == 0:
            return []
        return list(await cursor.fetchall())


async def _fetch_all(cursor: psycopg.AsyncCursor[Any], sql: str, params: Params) -> list[Row]:
    try:
        await cursor.execute(to_pyformat(sql), _NO_PARAMS if params is None else params)
        # pgresult answers "did it return rows?" and names the columns without building the
        # description's column objects.
        result = cursor.pgresult
        if result is None or result.nfields == 0:
            return []
        names = [(result.fname(index) or b"").decode() for index in range(result.nfields)]
        return [dict(zip(names, values, strict=True)) for values in await cursor.fetchall()]
    except psycopg.Error as exc:
        raise _aether_error(exc) from exc


async def _execute(cursor: psycopg.AsyncCursor[Any], sql: str, params: Params) -> int:
    try:
        await cursor.execute(to_pyformat(sql), _NO_PARAMS if params is None else params)
    except psycopg.Error as exc:
        raise _aether_error(exc) from exc
    return cursor.rowcount


# COPY's text format: backslash escapes for the characters it gives meaning to.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(columns: Sequence[Sequence[Any]]) -> bytes:
    """Rows given a column at a time in COPY's text format, built in one go: writing row by
    row costs several times more per row. ``None`` is ``\\N``; everything else goes through
    ``str``. Each column is made text with iteration in C — a column of strings that holds
    no character COPY gives meaning to (most do) is taken as it is — and the rows are joined
    without a Python call per value."""
    texts = list(map(_copy_column, columns))
    if not texts or not texts[0]:
        return b""
    return ("\n".join(map("\t".join, zip(*texts, strict=True))) + "\n").encode("utf-8", "replace")


def _copy_column(values: Sequence[Any]) -> Sequence[str]:
    if not values or values.count(values[0]) == len(values):  # one value in every row
        return [_copy_value(values[0])] * len(values) if values else []
    kinds = set(map(type, values))
    if kinds == {str}:
        joined = "".join(values)
        if "\\" not in joined and "\t" not in joined and "\n" not in joined and "\r" not in joined:
            return values
    elif kinds == {int}:  # int.__repr__ called directly: half the time of str()
        return list(map(int.__repr__, values))
    return list(map(_copy_value, values))


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    # Most values need no escape: one C pass each says so (tab, CR, LF are not printable).
    if "\\" in text or not text.isprintable():
        return text.translate(_COPY_ESCAPES)
    return text


@contextlib.contextmanager
def _pg_errors() -> Any:
    try:
        yield
    except psycopg.Error as exc:
        raise _aether_error(exc) from exc


def _aether_error(exc: psycopg.Error) -> AetherError:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return DuplicateKey(first_line)
    if isinstance(exc, psycopg.errors.IntegrityError):
        return Conflict(f"constraint violated: {first_line}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # InterfaceError: the connection was closed under us (a terminated backend).
        return ServiceUnavailable(f"PostgreSQL unavailable: {first_line}")
    return InternalError(f"database error: {first_line}")

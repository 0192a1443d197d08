"""SQLite through the standard library's ``sqlite3``: the embedded default's database."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aether.errors import Conflict, InternalError, ServiceUnavailable
from aether.store.database import Database, DuplicateKey, Executor, Params, Row

T = TypeVar("T")


class SqliteDatabase(Database):
    """One connection on one dedicated thread: SQLite serialises writers anyway, and a single
    thread keeps the stdlib driver's thread rules simple. An asyncio lock keeps a transaction's
    statements from interleaving with other coroutines'."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aether-sqlite")
        self._lock = asyncio.Lock()
        self._conn: Any = None

    async def open(self) -> None:
        await self._run(self._connect)

    def _connect(self) -> None:
        import sqlite3

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise ServiceUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args))

    def _fetch_all(self, sql: str, params: Params) -> list[Row]:
        with _sqlite_errors():
            cursor = self._conn.execute(sql, dict(params or {}))
            return [dict(row) for row in cursor.fetchall()]

    def _execute(self, sql: str, params: Params) -> int:
        with _sqlite_errors():
            rowcount: int = self._conn.execute(sql, dict(params or {})).rowcount
            return rowcount

    def _copy_columns(
        self, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        with _sqlite_errors():
            self._conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                zip(*values, strict=True),
            )

    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]:
        async with self._lock:
            return await self._run(self._fetch_all, sql, params)

    async def copy_columns(
        self, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]
    ) -> None:
        async with self.transaction() as tx:
            await tx.copy_columns(table, columns, values)

    async def execute(self, sql: str, params: Params = None) -> int:
        async with self._lock:
            return await self._run(self._execute, sql, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._lock:
            await self._run(self._execute, "BEGIN IMMEDIATE", None)
            try:
                yield _SqliteTransaction(self)
            except BaseException:
                await self._run(self._execute, "ROLLBACK", None)
                raise
            await self._run(self._execute, "COMMIT", None)


class _SqliteTransaction(Executor):
    dialect = "sqlite"

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]:
        return await self._db._run(self._db._fetch_all, sql, params)

    async def execute(self, sql: str, params: Params = None) -> int:
        return await self._db._run(self._db._execute, sql, params)

    async def copy_columns(
        self, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]
    ) -> None:
        await self._db._run(self._db._copy_columns, table, columns, values)


@contextlib.contextmanager
def _sqlite_errors() -> Any:
    import sqlite3

    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
            raise DuplicateKey(str(exc)) from exc
        raise Conflict(f"constraint violated: {exc}") from exc
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if any(word in text for word in ("locked", "unable to open", "disk I/O", "is full")):
            raise ServiceUnavailable(f"database unavailable: {text}") from exc
        raise InternalError(f"database error: {text}") from exc
    except sqlite3.Error as exc:
        raise InternalError(f"database error: {exc}") from exc

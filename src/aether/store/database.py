"""One async database interface over SQLite (stdlib ``sqlite3``) and PostgreSQL (psycopg 3).

SQL is written once with ``:name`` parameters; the PostgreSQL adapter rewrites them to
psycopg's ``%(name)s``. Rows come back as plain dicts on both backends. Driver exceptions
are wrapped here: an unreachable database is :class:`ServiceUnavailable`, a unique
violation :class:`DuplicateKey`, anything else :class:`InternalError`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aether.errors import Conflict, InternalError, ServiceUnavailable

Params = Mapping[str, Any] | None
Row = dict[str, Any]


class DuplicateKey(Conflict):
    """A row violates a unique constraint; query modules turn it into a precise message."""


class Executor(abc.ABC):
    """The statements both a database and a transaction can run."""

    dialect: str

    @abc.abstractmethod
    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]: ...

    async def fetch_one(self, sql: str, params: Params = None) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_value(self, sql: str, params: Params = None) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else next(iter(row.values()))

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = None) -> int:
        """Run a statement; returns the number of rows it touched."""


class Database(Executor):
    """A connection source: statements run in autocommit, ``transaction()`` groups them."""

    url: str

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Executor]: ...

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ServiceUnavailable unless the database answers."""
        await self.fetch_value("SELECT 1 AS ok")


def open_database(url: str | None, data_dir: Path) -> Database:
    """``postgresql://…`` → PostgreSQL; ``sqlite:///path`` or None → SQLite in data_dir."""
    if url and url.startswith(("postgresql://", "postgres://")):
        from aether.store.postgres import PostgresDatabase

        return PostgresDatabase(url)
    if url and not url.startswith("sqlite:"):
        raise ServiceUnavailable(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]}")
    path = Path(url.split("sqlite:///", 1)[1]) if url else data_dir / "aether.db"
    return SqliteDatabase(path)


# --- SQLite ---------------------------------------------------------------------------------


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

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args))

    def _fetch_all(self, sql: str, params: Params) -> list[Row]:
        with _sqlite_errors():
            cursor = self._conn.execute(sql, dict(params or {}))
            return [dict(row) for row in cursor.fetchall()]

    def _execute(self, sql: str, params: Params) -> int:
        with _sqlite_errors():
            return self._conn.execute(sql, dict(params or {})).rowcount

    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]:
        async with self._lock:
            return await self._run(self._fetch_all, sql, params)

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


_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``:name`` → ``%(name)s`` (and a literal ``%`` → ``%%``) for psycopg."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))

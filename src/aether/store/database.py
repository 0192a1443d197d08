"""The one async database interface that :mod:`aether.store.sqlite` (stdlib ``sqlite3``) and
:mod:`aether.store.postgres` (psycopg 3) implement.

SQL is written once with ``:name`` parameters; the PostgreSQL adapter rewrites them to
psycopg's ``%(name)s``. Rows come back as plain dicts on both backends. Each adapter wraps its
driver's exceptions: an unreachable database is :class:`ServiceUnavailable`, a unique
violation :class:`DuplicateKey`, anything else :class:`InternalError`.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aether.errors import Conflict

Params = Mapping[str, Any] | None
Row = dict[str, Any]


class DuplicateKey(Conflict):
    """A row violates a unique constraint; query modules turn it into a precise message."""


class Executor(abc.ABC):
    """The statements both a database and a transaction can run."""

    dialect: str

    @abc.abstractmethod
    async def fetch_all(self, sql: str, params: Params = None) -> list[Row]: ...

    async def fetch_tuples(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Rows as tuples in the statement's column order: for a reader of thousands of rows
        that takes each apart at once (no dict per row where the driver allows)."""
        return [tuple(row.values()) for row in await self.fetch_all(sql, params)]

    async def fetch_one(self, sql: str, params: Params = None) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_value(self, sql: str, params: Params = None) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else next(iter(row.values()))

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = None) -> int:
        """Run a statement; returns the number of rows it touched."""

    @abc.abstractmethod
    async def copy_columns(
        self, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]
    ) -> None:
        """Insert many rows in one go (PostgreSQL: ``COPY``; SQLite: ``executemany``), given
        a column at a time: ``values[i]`` holds ``columns[i]`` of every row, all of one
        length. ``table`` and ``columns`` are the caller's constants, never user input."""


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


def in_list(prefix: str, values: Iterable[str]) -> tuple[str, dict[str, str]]:
    """Named placeholders for ``IN (...)`` and their parameters (duplicates dropped); an
    empty ``values`` gives an empty parameter dict, which callers answer without a query."""
    names = {f"{prefix}{index}": value for index, value in enumerate(dict.fromkeys(values))}
    return ", ".join(":" + name for name in names), names

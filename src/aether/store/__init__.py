"""All SQL lives here: the database adapters, migrations and the queries per resource.

SQLite (:mod:`aether.store.sqlite`, the embedded default) and PostgreSQL
(:mod:`aether.store.postgres`, production) sit behind one async interface,
:class:`aether.store.database.Database`, and :func:`open_database` picks one by URL. Query
modules write portable SQL with ``:name`` parameters and both backends run the same
migrations. Callers: ``aether.server`` (route handlers), ``aether.worker`` (the reconcile loop)
and the operator commands.
"""

from __future__ import annotations

from pathlib import Path

from aether.errors import ServiceUnavailable
from aether.store.database import Database


def open_database(url: str | None, data_dir: Path) -> Database:
    """``postgresql://…`` → PostgreSQL; ``sqlite:///path`` or None → SQLite in data_dir.
    Not yet opened (``await db.open()``); psycopg is imported only for PostgreSQL."""
    if url and url.startswith(("postgresql://", "postgres://")):
        from aether.store.postgres import PostgresDatabase

        return PostgresDatabase(url)
    if url and not url.startswith("sqlite:"):
        raise ServiceUnavailable(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]}")
    from aether.store.sqlite import SqliteDatabase

    path = Path(url.split("sqlite:///", 1)[1]) if url else data_dir / "aether.db"
    return SqliteDatabase(path)

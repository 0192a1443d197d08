"""Where sealed values live, for a key rotation: config versions' vars and releases' one-off
overrides. Re-sealing a row is a compare-and-swap on its text, so a write that lands in
between is never overwritten (the next pass re-seals it if it needs to)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aether.sealing import KeyRing, SealedEnv, box_key_id
from aether.store import config_vars
from aether.store.database import Executor

# table, the sealed column, the columns that name a row
_HOLDERS = (
    ("config_versions", "vars", ("app_id", "version")),
    ("releases", "overrides", ("id",)),
)


@dataclass(frozen=True)
class SealedRow:
    table: str
    column: str
    key: dict[str, object]
    app_id: str
    raw: str

    @property
    def vars(self) -> SealedEnv:
        return config_vars.decode(self.raw)


async def sealed_rows(db: Executor) -> AsyncIterator[SealedRow]:
    for table, column, key_columns in _HOLDERS:
        names = ", ".join(dict.fromkeys((*key_columns, "app_id")))
        rows = await db.fetch_all(f"SELECT {names}, {column} AS raw FROM {table}")
        for row in rows:
            if row["raw"] and row["raw"] != "{}":
                key = {name: row[name] for name in key_columns}
                yield SealedRow(table, column, key, row["app_id"], row["raw"])


def stale(row: SealedRow, kid: str) -> list[str]:
    """Names in the row whose values are not sealed under ``kid``."""
    return [name for name, box in row.vars.items() if box_key_id(box["box"]) != kid]


async def reseal(db: Executor, row: SealedRow, ring: KeyRing, kid: str) -> int:
    """Re-seal the row's values under ``kid``; how many were re-sealed (0 when the row
    changed meanwhile: the caller's next pass sees the new text)."""
    names = stale(row, kid)
    if not names:
        return 0
    fresh = {
        name: ring.reseal(box, kid=kid, app_id=row.app_id, name=name)
        for name, box in row.vars.items()
    }
    where = " AND ".join(f"{name} = :k_{name}" for name in row.key)
    params = {f"k_{name}": value for name, value in row.key.items()}
    touched = await db.execute(
        f"UPDATE {row.table} SET {row.column} = :new WHERE {where} AND {row.column} = :old",
        {**params, "new": config_vars.encode(fresh), "old": row.raw},
    )
    return len(names) if touched else 0


async def count_stale(db: Executor, kid: str) -> int:
    """Values anywhere that are not sealed under ``kid``."""
    return sum([len(stale(row, kid)) async for row in sealed_rows(db)])

"""Apps' output in the database: what workers ship, what every API replica reads.

A worker ships a source (one app's log files on its host, one pod's log) in batches: each
batch is numbered under the app's ``log_streams`` row lock and written with ``COPY`` (SQLite:
``executemany``) in the transaction that moves the source's position, so a line is stored
once and an app's lines become visible in ``seq`` order. ``seq`` is the cursor: it means the
same on every replica. On PostgreSQL ``log_lines`` has one partition per day, created as
lines arrive; retention drops whole partitions past the age limit. Design: docs/logs.md.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any, NamedTuple, cast, overload

from aether.errors import AetherError
from aether.store.clock import now_iso
from aether.store.database import Database, Executor, Row

COLUMNS = ("app_id", "seq", "day", "ts", "deployment_id", "instance", "stream", "line", "end_bytes")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
NOTICE = "notice"  # a line that says what the stream sees, not the app's output
# PostgreSQL: every stored batch notifies this channel with its app's id (followers wake).
NOTIFY_CHANNEL = "aether_log_lines"
# Partitions known to exist, per database URL (created once per process and day).
_partitions: dict[str, set[int]] = {}


class NewLine(NamedTuple):
    """One line as a shipper hands it in (``ts``: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, UTC). A
    tuple: a batch holds thousands, built and taken apart column-wise in C."""

    ts: str
    deployment_id: str
    instance: str
    stream: str  # "stdout" | "stderr" | "notice"
    line: str


class LineColumns(Sequence[NewLine]):
    """Lines held a column at a time, as a feed that parses thousands at once builds them
    (no object per line); indexing gives :class:`NewLine`. The store takes the columns as
    they are."""

    __slots__ = ("ts", "deployment_id", "instance", "stream", "line")

    def __init__(
        self,
        ts: Sequence[str],
        deployment_id: Sequence[str],
        instance: Sequence[str],
        stream: Sequence[str],
        line: Sequence[str],
    ) -> None:
        if not len(ts) == len(deployment_id) == len(instance) == len(stream) == len(line):
            raise ValueError("the columns of a batch differ in length")
        self.ts, self.deployment_id, self.instance = ts, deployment_id, instance
        self.stream, self.line = stream, line

    def columns(self) -> tuple[Sequence[str], ...]:
        return (self.ts, self.deployment_id, self.instance, self.stream, self.line)

    def __len__(self) -> int:
        return len(self.line)

    @overload
    def __getitem__(self, index: int) -> NewLine: ...

    @overload
    def __getitem__(self, index: slice) -> list[NewLine]: ...

    def __getitem__(self, index: int | slice) -> NewLine | list[NewLine]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return NewLine(*(column[index] for column in self.columns()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable columns: like a list


def columns_of(lines: Sequence[NewLine]) -> list[list[str]]:
    """The five columns of ``lines`` (ts, deployment_id, instance, stream, line)."""
    if isinstance(lines, LineColumns):
        return [list(column) for column in lines.columns()]
    if not lines:
        return [[], [], [], [], []]
    return [list(column) for column in zip(*lines, strict=True)]


@dataclass(frozen=True)
class Batch:
    """Lines of one source, from position ``after`` (None: its start) to ``position``;
    ``dropped`` lines were skipped before them (shipping fell behind)."""

    source: str
    app_id: str
    after: str | None
    position: str
    lines: Sequence[NewLine]
    dropped: int = 0


def day_of(ts: str) -> int:
    """Days since 1970-01-01 of a timestamp (the partition key)."""
    return _day(ts[:10])


@functools.lru_cache(maxsize=64)
def _day(text: str) -> int:
    return date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL


def dropped_notice(count: int, ts: str) -> NewLine:
    return NewLine(
        ts, "", "", NOTICE, f"{count} lines dropped: log shipping fell behind the app's output"
    )


async def source_position(db: Executor, source: str) -> str | None:
    value = await db.fetch_value(
        "SELECT position FROM log_sources WHERE source = :source", {"source": source}
    )
    return None if value is None else str(value)


async def ship(db: Database, batch: Batch) -> bool:
    """Store the batch and move its source; False (nothing stored) when the source is no
    longer at ``batch.after`` (another shipper moved it): the caller reads its position again."""
    columns = columns_of(batch.lines)
    if batch.dropped:
        notice = dropped_notice(batch.dropped, columns[0][0] if columns[0] else now_iso())
        for column, value in zip(columns, notice, strict=True):
            column.insert(0, value)
    await _ensure_partitions(db, map(_day, set(map(_DATE, columns[0]))))
    async with db.transaction() as tx:
        head = await tx.fetch_one(
            "INSERT INTO log_streams (app_id) VALUES (:app_id) ON CONFLICT (app_id)"
            " DO UPDATE SET last_seq = log_streams.last_seq"
            " RETURNING last_seq, total_bytes",
            {"app_id": batch.app_id},
        )
        assert head is not None
        if await source_position(tx, batch.source) != batch.after:
            return False
        seq, total = int(head["last_seq"]), int(head["total_bytes"])
        values = _values(batch.app_id, seq, total, columns)
        if values:
            await tx.copy_columns("log_lines", COLUMNS, values)
            seq, total = values[1][-1], values[-1][-1]
        if tx.dialect == "postgresql":  # sent when the transaction commits
            await tx.execute(
                "SELECT pg_notify(:channel, :app_id)",
                {"channel": NOTIFY_CHANNEL, "app_id": batch.app_id},
            )
        await tx.execute(
            "UPDATE log_streams SET last_seq = :seq, total_bytes = :total,"
            " dropped = dropped + :dropped WHERE app_id = :app_id",
            {"seq": seq, "total": total, "dropped": batch.dropped, "app_id": batch.app_id},
        )
        await tx.execute(
            "INSERT INTO log_sources (source, app_id, position, updated_at)"
            " VALUES (:source, :app_id, :position, :now) ON CONFLICT (source)"
            " DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
            {
                "source": batch.source,
                "app_id": batch.app_id,
                "position": batch.position,
                "now": now_iso(),
            },
        )
    return True


_DATE = operator.itemgetter(slice(10))  # "YYYY-MM-DD" of a timestamp


def _values(app_id: str, seq: int, total: int, columns: list[list[str]]) -> list[list[Any]]:
    """The ``COLUMNS`` of the lines, a column at a time: numbered from ``seq + 1``, each with
    its running byte total. Built with iteration in C: no Python code runs per line."""
    ts, deployments, instances, streams, texts = columns
    count = len(texts)
    if not count:
        return []
    if "\x00" in "".join(texts):  # PostgreSQL's text holds no NUL
        texts = [text.replace("\x00", "\ufffd") for text in texts]
    try:
        ends = list(accumulate(map((1).__add__, map(len, map(str.encode, texts))), initial=total))
    except UnicodeEncodeError:  # a lone surrogate: counted as the "?" it is stored as
        sizes = (len(text.encode("utf-8", "replace")) for text in texts)
        ends = list(accumulate(map((1).__add__, sizes), initial=total))
    days = list(map(_day, map(_DATE, ts)))
    numbers = list(range(seq + 1, seq + 1 + count))
    return [[app_id] * count, numbers, days, ts, deployments, instances, streams, texts, ends[1:]]


async def _ensure_partitions(db: Database, days: Iterable[int]) -> None:
    if db.dialect != "postgresql":
        return
    known = _partitions.setdefault(db.url, set())
    for day in sorted(set(days) - known):
        try:
            await db.execute(
                f"CREATE TABLE IF NOT EXISTS log_lines_d{day:d} PARTITION OF log_lines"
                f" FOR VALUES FROM ({day:d}) TO ({day + 1:d})"
            )
        except AetherError:
            # Two shippers created it at once ("already exists"): it is there either way.
            if not await _partition_exists(db, day):
                raise
        known.add(day)


async def _partition_exists(db: Executor, day: int) -> bool:
    return bool(
        await db.fetch_value(
            "SELECT count(*) FROM pg_class WHERE relname = :name", {"name": f"log_lines_d{day:d}"}
        )
    )


def _filters(since: str | None, instance_suffix: str | None) -> tuple[str, dict[str, Any]]:
    sql = ""
    params: dict[str, Any] = {}
    if since is not None:
        sql += " AND day >= :since_day AND ts >= :since"
        params.update(since=since, since_day=day_of(since))
    if instance_suffix is not None:
        sql += " AND (instance LIKE :instance OR stream = 'notice')"
        params["instance"] = "%" + instance_suffix
    return sql, params


_SELECT = "SELECT seq, ts, deployment_id, instance, stream, line FROM log_lines"
# A stored line as readers get it, a tuple in ``_SELECT``'s order: a page of a thousand is
# taken apart at once, with no dict per line.
StoredLine = tuple[int, str, str, str, str, str]


async def read_after(
    db: Executor,
    app_id: str,
    after_seq: int,
    *,
    limit: int,
    upto: int | None = None,
    since: str | None = None,
    instance_suffix: str | None = None,
) -> list[StoredLine]:
    """Up to ``limit`` lines with ``seq > after_seq`` (and ``seq <= upto``), oldest first.
    A reader that knows the head reads ranges (``upto``): the lines of a growing table often
    have no statistics yet, and with none the planner reads every line after ``after_seq``
    to sort them, where a range bounds that to the range."""
    where, params = _filters(since, instance_suffix)
    if upto is not None:
        where += " AND seq <= :upto"
        params["upto"] = upto
    rows = await db.fetch_tuples(
        f"{_SELECT} WHERE app_id = :app_id AND seq > :after{where} ORDER BY seq LIMIT :limit",
        {"app_id": app_id, "after": after_seq, "limit": limit, **params},
    )
    return cast(list[StoredLine], rows)


async def read_tail(
    db: Executor,
    app_id: str,
    count: int,
    *,
    upto: int,
    since: str | None = None,
    instance_suffix: str | None = None,
) -> list[StoredLine]:
    """The last ``count`` lines up to ``seq`` ``upto``, oldest first."""
    where, params = _filters(since, instance_suffix)
    rows = await db.fetch_tuples(
        f"{_SELECT} WHERE app_id = :app_id AND seq <= :upto{where} ORDER BY seq DESC LIMIT :limit",
        {"app_id": app_id, "upto": upto, "limit": count, **params},
    )
    return cast(list[StoredLine], rows[::-1])


async def stream_head(db: Executor, app_id: str) -> Row | None:
    """The app's ``last_seq``, ``total_bytes`` and ``dropped`` (None: nothing shipped yet)."""
    return await db.fetch_one(
        "SELECT last_seq, total_bytes, dropped FROM log_streams WHERE app_id = :app_id",
        {"app_id": app_id},
    )


async def dropped_total(db: Executor) -> int:
    return int(await db.fetch_value("SELECT COALESCE(SUM(dropped), 0) FROM log_streams") or 0)


@dataclass(frozen=True)
class Retention:
    max_age_secs: float  # lines older than this go (PostgreSQL: whole days at once, too)
    max_bytes_per_app: int  # an app's oldest lines go while it holds more (0: no limit)


async def enforce_retention(db: Database, policy: Retention, *, now: datetime | None = None) -> int:
    """Apply the policy to every app; returns how many lines were deleted row by row (lines
    in dropped partitions are not counted)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=policy.max_age_secs)
    cutoff_ts = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if db.dialect == "postgresql":
        await _drop_partitions_before(db, day_of(cutoff_ts))
    removed = await db.execute(
        "DELETE FROM log_lines WHERE day <= :day AND ts < :cutoff",
        {"day": day_of(cutoff_ts), "cutoff": cutoff_ts},
    )
    if policy.max_bytes_per_app > 0:
        for head in await db.fetch_all(
            "SELECT app_id, total_bytes FROM log_streams WHERE total_bytes > :limit",
            {"limit": policy.max_bytes_per_app},
        ):
            floor = int(head["total_bytes"]) - policy.max_bytes_per_app
            last = await _last_seq_within(db, head["app_id"], floor)
            if last is not None:
                removed += await db.execute(
                    "DELETE FROM log_lines WHERE app_id = :app_id AND seq <= :last",
                    {"app_id": head["app_id"], "last": last},
                )
    return removed


async def _last_seq_within(db: Executor, app_id: str, floor: int) -> int | None:
    """The last line whose ``end_bytes`` is at most ``floor`` (None: none is). ``end_bytes``
    grows with ``seq``, so a binary search over the primary key finds it in a few lookups
    instead of a scan of every line the app keeps."""
    bounds = await db.fetch_one(
        "SELECT MIN(seq) AS low, MAX(seq) AS high FROM log_lines WHERE app_id = :app_id",
        {"app_id": app_id},
    )
    if bounds is None or bounds["low"] is None:
        return None
    low, high, found = int(bounds["low"]), int(bounds["high"]), None
    while low <= high:
        middle = (low + high) // 2
        row = await db.fetch_one(  # the first line at or after `middle` (gaps are possible)
            "SELECT seq, end_bytes FROM log_lines WHERE app_id = :app_id AND seq >= :seq"
            " ORDER BY seq LIMIT 1",
            {"app_id": app_id, "seq": middle},
        )
        if row is None:
            high = middle - 1
        elif int(row["end_bytes"]) <= floor:
            found, low = int(row["seq"]), int(row["seq"]) + 1
        else:
            high = middle - 1
    return found


async def _drop_partitions_before(db: Database, day: int) -> int:
    """Drop the daily partitions entirely older than ``day``; how many went."""
    rows = await db.fetch_all(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'log_lines'"
    )
    dropped = 0
    for row in rows:
        name = str(row["name"])
        suffix = name.removeprefix("log_lines_d")
        if suffix.isdigit() and int(suffix) < day:
            await db.execute(f"DROP TABLE IF EXISTS log_lines_d{int(suffix):d}")
            _partitions.get(db.url, set()).discard(int(suffix))
            dropped += 1
    return dropped

"""The local runtime's log feed: an app's log files (:mod:`.logfiles`) read in batches for the
log shipper, from a position (a cursor, ``<seq>-<byte offset>``) on.

A batch is a chunk of the files parsed in one go: one read, one JSON parse of all its
records (orjson: half the standard library's time on these records), and the store's columns taken from the records with iteration in C
(no object per line, no cursor per line — the shipper only needs where the batch ends). A feed that finds too much waiting skips ahead
to near the end of the newest file and counts what it skipped, rather than falling further
behind.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from aether.store.logs import LineColumns, NewLine, columns_of
from aether.worker.runtimes.logfiles import (
    MIN_FILE_BYTES,
    LogFile,
    file_size,
    list_log_files,
    parse_cursor,
)


@dataclass(frozen=True)
class FileBatch:
    """What :func:`read_batch` found: lines after the position, the position after them, how
    many lines it skipped to catch up, and whether it stopped at its byte budget with more
    already waiting."""

    lines: Sequence[NewLine]
    position: str
    dropped: int = 0
    more: bool = False


def read_batch(
    logs_dir: Path,
    position: str | None,
    *,
    max_bytes: int = 1024 * 1024,
    max_lag_bytes: int = 8 * 1024 * 1024,
    instance: str = "",
) -> FileBatch:
    """The complete lines after ``position`` (a cursor; None: the oldest file's start), up to
    about ``max_bytes`` of them. When more than ``max_lag_bytes`` wait to be read, everything
    but the newest file's last ``max_lag_bytes // 4`` is skipped and counted instead: the
    reader catches up rather than falling further behind."""
    files = list_log_files(logs_dir)
    if not files:
        return FileBatch([], position or "")
    start = parse_cursor(position) or (files[0].seq, 0)
    files = [f for f in files if f.seq >= start[0]]
    dropped = 0
    sizes = {f.seq: file_size(f.path) for f in files}
    lag = sum(sizes.values()) - (start[1] if files and files[0].seq == start[0] else 0)
    if lag > max_lag_bytes and files:
        start, dropped = _skip_ahead(files, start, sizes, max_lag_bytes // 4)
        files = [f for f in files if f.seq >= start[0]]
    lines = _Collected()
    here = start
    budget = max_bytes
    for index, log_file in enumerate(files):
        offset = here[1] if log_file.seq == here[0] else 0
        if budget <= 0:
            return FileBatch(lines.done(), f"{here[0]}-{here[1]}", dropped, more=True)
        found, end = _read_some(log_file, offset, budget, instance)
        lines.add(found)
        budget -= end - offset
        here = (log_file.seq, end)
        if index == len(files) - 1 or end >= sizes.get(log_file.seq, 0):
            continue
        if found:  # more in this file than the budget: the next batch goes on from here
            return FileBatch(lines.done(), f"{here[0]}-{here[1]}", dropped, more=True)
        here = (files[index + 1].seq, 0)  # a rotated file ends in a torn line: skip it
    return FileBatch(lines.done(), f"{here[0]}-{here[1]}", dropped)


class _Collected:
    """The columns of a batch's lines, file after file."""

    def __init__(self) -> None:
        self.columns: list[list[str]] = [[], [], [], [], []]

    def add(self, lines: Sequence[NewLine]) -> None:
        for column, more in zip(self.columns, columns_of(lines), strict=True):
            column.extend(more)

    def done(self) -> Sequence[NewLine]:
        return LineColumns(*self.columns) if self.columns[0] else []


def _skip_ahead(
    files: list[LogFile], start: tuple[int, int], sizes: dict[int, int], keep: int
) -> tuple[tuple[int, int], int]:
    """A new start near the end of the newest file and the lines skipped to get there."""
    newest = files[-1]
    target = max(sizes[newest.seq] - keep, 0)
    skipped = 0
    for log_file in files:
        begin = start[1] if log_file.seq == start[0] else 0
        end = target if log_file is newest else sizes[log_file.seq]
        try:
            with log_file.path.open("rb") as handle:
                handle.seek(begin)
                data = handle.read(max(end - begin, 0))
        except FileNotFoundError:
            continue
        if log_file is newest:
            cut = data.rfind(b"\n") + 1  # resume at a line's start
            target, data = begin + cut, data[:cut]
        skipped += data.count(b"\n")
    return (newest.seq, target), skipped


def _read_some(
    log_file: LogFile, offset: int, budget: int, instance: str
) -> tuple[Sequence[NewLine], int]:
    """Complete lines from ``offset``, reading about ``budget`` bytes (at least one line)."""
    try:
        with log_file.path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(max(budget, MIN_FILE_BYTES))
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    if not complete:
        return [], offset
    try:  # one parse for the whole chunk; a torn or foreign line falls back to each line
        records = orjson.loads(b"[" + complete[:-1].replace(b"\n", b",") + b"]")
        lines: Sequence[NewLine] | None = _columns(records, log_file, instance)
        if lines is None:  # a record with an instance, or not as the supervisor writes them
            lines = [_new_line(record, log_file, instance) for record in records]
    except (ValueError, TypeError, KeyError, AttributeError):
        lines = _each_line(complete, log_file, instance)
    return lines, offset + len(complete)


_FIELDS = operator.itemgetter("ts", "stream", "line")


def _columns(records: list[Any], log_file: LogFile, instance: str) -> LineColumns | None:
    """The records' lines a column at a time, when every record is what a supervisor writes
    for a single process — ``{"ts", "stream", "line"}``, all text — else None. Every check
    and every column is one pass in C."""
    if not records or set(map(type, records)) != {dict} or set(map(len, records)) != {3}:
        return None
    ts, streams, texts = zip(*map(_FIELDS, records), strict=True)  # KeyError: other keys
    if set(map(type, ts + streams + texts)) != {str}:
        return None
    count = len(texts)
    return LineColumns(ts, [log_file.deployment_id] * count, [instance] * count, streams, texts)


def _new_line(record: dict[str, Any], log_file: LogFile, instance: str) -> NewLine:
    line = record["line"]
    if type(line) is not str:
        raise TypeError("not a line of text")
    return NewLine(
        record["ts"],
        log_file.deployment_id,
        record.get("instance") or instance,
        record.get("stream", "stdout"),
        line,
    )


def _each_line(chunk: bytes, log_file: LogFile, instance: str) -> list[NewLine]:
    """The records of ``chunk`` one by one, skipping what is not one (a torn write of a
    crashed writer)."""
    lines = []
    for raw in chunk.splitlines():
        try:
            lines.append(_new_line(json.loads(raw), log_file, instance))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return lines

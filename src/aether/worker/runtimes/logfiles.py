"""Per-deployment log files with timestamps, and a reader that tails, filters and follows them.

Layout: ``<data_dir>/apps/<app>/logs/<seq>-<deployment_id>.ndjson``, one JSON object
``{"ts", "stream", "line"}`` per line. ``seq`` numbers an app's files in the order their
deployments first started, so reading the files by name reads the app's output in order.
A cursor, ``<seq>-<byte offset>``, points right after a line: a reader given a cursor
resumes exactly there, even across a redeploy (it moves on to the next file).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aether.errors import BadRequest
from aether.since import parse_since as since_moment
from aether.worker.runtimes.base import LogLine

_FILE_NAME = re.compile(r"^(\d{6})-(.+)\.ndjson$")
_CURSOR = re.compile(r"^(\d+)-(\d+)$")
FOLLOW_POLL_SECS = 0.1


def utc_stamp(moment: datetime | None = None) -> str:
    """The timestamp format of log lines: sortable ISO-8601 UTC with microseconds."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LogFile:
    seq: int
    deployment_id: str
    path: Path


def list_log_files(logs_dir: Path) -> list[LogFile]:
    """An app's log files, oldest deployment first."""
    if not logs_dir.is_dir():
        return []
    found = []
    for entry in logs_dir.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(LogFile(int(match[1]), match[2], entry))
    return sorted(found, key=lambda f: f.seq)


def log_path_for(logs_dir: Path, deployment_id: str) -> Path:
    """The deployment's log file: the existing one (a restart appends) or the next number."""
    files = list_log_files(logs_dir)
    for log_file in files:
        if log_file.deployment_id == deployment_id:
            return log_file.path
    seq = files[-1].seq + 1 if files else 1
    return logs_dir / f"{seq:06d}-{deployment_id}.ndjson"


def prune_logs(logs_dir: Path, *, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` deployments' log files; the deleted paths."""
    files = list_log_files(logs_dir)
    doomed = [f.path for f in files[: max(len(files) - keep, 0)]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


class LogWriter:
    """Appends timestamped lines of one deployment's processes to its file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def write(self, stream: str, line: str) -> None:
        record = {"ts": utc_stamp(), "stream": stream, "line": line}
        # One write call per line: concurrent readers never see half a record.
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None or cursor == "":
        return None
    match = _CURSOR.match(cursor)
    if not match:
        raise BadRequest(f"invalid cursor {cursor!r}: pass a cursor from an earlier log line")
    return int(match[1]), int(match[2])


def parse_since(since: str | None, *, now: datetime | None = None) -> str | None:
    """``since`` (see :mod:`aether.since`) in the log timestamp format; None for no bound."""
    if since is None or since == "":
        return None
    try:
        return utc_stamp(since_moment(since, now=now))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _read_complete_lines(log_file: LogFile, offset: int) -> list[tuple[LogLine, int]]:
    """Lines after ``offset`` that are complete (a half-written last line waits)."""
    with log_file.path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    lines = []
    position = offset
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        position += len(raw)
        line = _decode(raw, log_file, position)
        if line is not None:
            lines.append((line, position))
    return lines


def _decode(raw: bytes, log_file: LogFile, end: int) -> LogLine | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None  # a torn write from a crashed worker: skip it
    return LogLine(
        ts=record.get("ts", ""),
        deployment_id=log_file.deployment_id,
        stream=record.get("stream", "stdout"),
        line=record.get("line", ""),
        cursor=f"{log_file.seq}-{end}",
    )


def _start_positions(files: list[LogFile], cursor: tuple[int, int] | None) -> dict[int, int]:
    """Offset to start from in each file (files before the cursor are skipped)."""
    if cursor is None:
        return {f.seq: 0 for f in files}
    seq, offset = cursor
    return {f.seq: (offset if f.seq == seq else 0) for f in files if f.seq >= seq}


def _backlog(
    files: list[LogFile], starts: dict[int, int], tail: int | None, since: str | None
) -> tuple[list[LogLine], dict[int, int]]:
    """What is already written (after ``since``, last ``tail`` lines) and where each file
    ends, so following continues right after it."""
    kept: deque[LogLine] = deque(maxlen=tail) if tail is not None else deque()
    ends: dict[int, int] = dict(starts)
    for log_file in files:
        if log_file.seq not in starts:
            continue
        for line, end in _read_complete_lines(log_file, starts[log_file.seq]):
            ends[log_file.seq] = end
            if since is None or line.ts >= since:
                kept.append(line)
    return list(kept), ends


def read_logs(
    logs_dir: Path,
    *,
    tail: int | None = None,
    since: str | None = None,
    follow: bool = False,
    cursor: str | None = None,
    poll_secs: float = FOLLOW_POLL_SECS,
) -> AsyncIterator[LogLine]:
    """An app's output, oldest first; with ``follow``, keeps yielding lines as they are
    written (new deployments' files included) until the consumer stops. Bad arguments raise
    BadRequest here, before any line is produced."""
    if tail is not None and tail < 0:
        raise BadRequest("tail must be zero or more")
    position = parse_cursor(cursor)
    return _iterate(logs_dir, tail, parse_since(since), follow, position, poll_secs)


async def _iterate(
    logs_dir: Path,
    tail: int | None,
    since_stamp: str | None,
    follow: bool,
    position: tuple[int, int] | None,
    poll_secs: float,
) -> AsyncIterator[LogLine]:
    files = list_log_files(logs_dir)
    backlog, ends = _backlog(files, _start_positions(files, position), tail, since_stamp)
    for line in backlog:
        yield line
    if not follow:
        return
    floor = position[0] if position else 0
    while True:
        await asyncio.sleep(poll_secs)
        for log_file in list_log_files(logs_dir):
            if log_file.seq < floor:
                continue
            for line, end in _read_complete_lines(log_file, ends.get(log_file.seq, 0)):
                ends[log_file.seq] = end
                yield line

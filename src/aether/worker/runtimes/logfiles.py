"""Per-deployment log files with timestamps, and a reader that tails, filters and follows them.

Layout: ``<data_dir>/apps/<app>/logs/<seq>-<deployment_id>.ndjson``, one JSON object
``{"ts", "stream", "line"}`` per line. ``seq`` numbers an app's files in the order their
deployments first started, so reading the files by name reads the app's output in order.
A cursor, ``<seq>-<byte offset>``, points right after a line: a reader given a cursor
resumes exactly there, even across a redeploy (it moves on to the next file). A deployment
whose file reaches a quarter of ``AETHER_APP_LOG_MAX_BYTES`` goes on in a new file with the next
number, and the app's oldest files are deleted to keep it under that limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aether.errors import BadRequest
from aether.since import parse_since as since_moment
from aether.worker.runtimes.base import LogLine

_FILE_NAME = re.compile(r"^(\d{6})-(.+)\.ndjson$")
_CURSOR = re.compile(r"^(\d+)-(\d+)$")
FOLLOW_POLL_SECS = 0.1
# A rotated file is at least this big (a tiny AETHER_APP_LOG_MAX_BYTES still rotates sanely).
MIN_FILE_BYTES = 16 * 1024


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
    """The deployment's newest log file (a restart appends to it), or the next number."""
    files = [f for f in list_log_files(logs_dir) if f.deployment_id == deployment_id]
    return files[-1].path if files else new_log_file(logs_dir, deployment_id)


def new_log_file(logs_dir: Path, deployment_id: str) -> Path:
    """Create the next-numbered file for the deployment. Several writers (a release and its
    successor) may do this at once: creating with O_EXCL gives each its own number."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    files = list_log_files(logs_dir)
    seq = files[-1].seq + 1 if files else 1
    while True:
        path = logs_dir / f"{seq:06d}-{deployment_id}.ndjson"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            seq += 1
            continue
        return path


def prune_logs(logs_dir: Path, *, keep: int, max_bytes: int | None = None) -> list[Path]:
    """Delete the files of all but the newest ``keep`` deployments, then the oldest files
    while the app's logs exceed ``max_bytes`` (the newest file always stays)."""
    files = list_log_files(logs_dir)
    newest_first: list[str] = []
    for log_file in reversed(files):
        if log_file.deployment_id not in newest_first:
            newest_first.append(log_file.deployment_id)
    kept = set(newest_first[:keep])
    doomed = [f for f in files if f.deployment_id not in kept]
    left = [f for f in files if f.deployment_id in kept]
    if max_bytes is not None:
        sizes = {f.seq: file_size(f.path) for f in left}
        total = sum(sizes.values())
        while len(left) > 1 and total > max_bytes:
            oldest = left.pop(0)
            total -= sizes[oldest.seq]
            doomed.append(oldest)
    for log_file in doomed:
        log_file.path.unlink(missing_ok=True)
    return [f.path for f in doomed]


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# How much a writer appends between looks at whether its file is still the newest.
SHARED_CHECK_BYTES = 64 * 1024


class LogWriter:
    """Appends timestamped lines of one deployment's processes to its files. When a file
    reaches a quarter of the app's ``max_bytes`` the writer moves on to a new file (the next
    number, so cursors stay valid) and the app's oldest files go."""

    def __init__(
        self,
        logs_dir: Path,
        deployment_id: str,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        keep_deployments: int = 10,
        instance: str = "",
    ) -> None:
        self.logs_dir = logs_dir
        self.deployment_id = deployment_id
        self.max_bytes = max_bytes
        self.keep_deployments = keep_deployments
        # A release's processes share its files (appends of whole lines), each line naming
        # the process when there are several: a reader follows one sequence of files.
        self.instance = instance
        self.file_limit = max(max_bytes // 4, MIN_FILE_BYTES)
        self.path = log_path_for(logs_dir, deployment_id)
        self._file = self.path.open("ab", buffering=0)
        self._size = self._file.tell()
        self._unchecked = 0
        prune_logs(logs_dir, keep=keep_deployments, max_bytes=max_bytes)

    def write(self, stream: str, line: str) -> None:
        self.write_lines(stream, [line])

    def write_lines(self, stream: str, lines: list[str]) -> None:
        """Append ``lines`` (one read of the app's output), all with one timestamp: a reader
        never sees half a record, and a chunk of output costs one encoding pass and one
        system call per file it lands in, not one per line. A chunk larger than a file's room
        is split at record boundaries over new files, so no file outgrows its share of the
        app's limit and pruning never has to drop the newest lines."""
        if not lines:
            return
        data = _records(utc_stamp(), stream, self.instance, lines)
        start = 0
        while start < len(data):
            if self._size >= self.file_limit:
                self._rotate()
            end = len(data)
            if end - start > self.file_limit - self._size:
                # The last whole record that fits; at least one record per file.
                end = data.rfind(b"\n", start, start + self.file_limit - self._size) + 1
                if end <= start:
                    if self._size:
                        self._rotate()
                        continue
                    end = data.index(b"\n", start) + 1
            self._append(data[start:end])
            start = end

    def _append(self, data: bytes) -> None:
        self._file.write(data)  # unbuffered: the file's own write, complete for a regular file
        self._size += len(data)
        self._unchecked += len(data)
        if self._unchecked >= SHARED_CHECK_BYTES:  # another process may have moved on
            self._unchecked = 0
            self._size = os.fstat(self._file.fileno()).st_size
            if log_path_for(self.logs_dir, self.deployment_id) != self.path:
                self._rotate()

    def _rotate(self) -> None:
        """Onto the deployment's newest file when another of its processes started one,
        else a new one."""
        self._file.close()
        newest = log_path_for(self.logs_dir, self.deployment_id)
        if newest == self.path or file_size(newest) >= self.file_limit:
            newest = new_log_file(self.logs_dir, self.deployment_id)
        self.path = newest
        self._file = self.path.open("ab", buffering=0)
        self._size = self._file.tell()
        prune_logs(self.logs_dir, keep=self.keep_deployments, max_bytes=self.max_bytes)

    def close(self) -> None:
        self._file.close()


def _records(ts: str, stream: str, instance: str, lines: list[str]) -> bytes:
    """``lines`` as NDJSON records ``{"ts", "stream", "line"[, "instance"]}``, encoded in one
    pass: the JSON encoder writes the strings of a list with a newline between them (a string
    never holds a raw newline), and the newlines become the text between two records."""
    head = f'{{"ts": "{ts}", "stream": {json.dumps(stream)}, "line": '
    tail = f', "instance": {json.dumps(instance, ensure_ascii=False)}}}\n' if instance else "}\n"
    body = json.dumps(lines, ensure_ascii=False, separators=("\n", ": "))[1:-1]
    return (head + body.replace("\n", tail + head) + tail).encode("utf-8", "replace")


def recent_lines(logs_dir: Path, deployment_id: str, count: int) -> list[str]:
    """The deployment's last ``count`` output lines (from its newest file)."""
    files = [f for f in list_log_files(logs_dir) if f.deployment_id == deployment_id]
    if not files:
        return []
    try:
        with files[-1].path.open("rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - 64 * 1024, 0))
            data = handle.read()
    except OSError:
        return []
    lines = []
    for raw in data.splitlines()[-count:]:
        with contextlib.suppress(ValueError, AttributeError):
            lines.append(str(json.loads(raw).get("line", "")))
    return lines


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
    try:
        with log_file.path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:  # rotated away since it was listed
        return []
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


def _decode(raw: bytes, log_file: LogFile, end: int, instance: str = "") -> LogLine | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None  # a torn write from a crashed worker: skip it
    return _line(record, log_file, end, instance)


def _line(record: Any, log_file: LogFile, end: int, instance: str) -> LogLine | None:
    if not isinstance(record, dict):
        return None
    return LogLine(
        ts=record.get("ts", ""),
        deployment_id=log_file.deployment_id,
        stream=record.get("stream", "stdout"),
        line=record.get("line", ""),
        cursor=f"{log_file.seq}-{end}",
        instance=str(record.get("instance") or instance),
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
    import asyncio  # here: the app's supervisor writes logs and never pays for asyncio

    floor = position[0] if position else 0
    while True:
        await asyncio.sleep(poll_secs)
        for log_file in list_log_files(logs_dir):
            if log_file.seq < floor:
                continue
            for line, end in _read_complete_lines(log_file, ends.get(log_file.seq, 0)):
                ends[log_file.seq] = end
                yield line

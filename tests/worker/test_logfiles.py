"""Per-deployment log files: tail, since, cursors that resume, follow across redeploys."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from worker_support import PLAIN_APP, Recorder, eventually, extracted_release, get_json

from aether.errors import BadRequest
from aether.worker.runtimes.base import LogLine
from aether.worker.runtimes.local import LocalRuntime
from aether.worker.runtimes.logfeed import read_batch
from aether.worker.runtimes.logfiles import (
    LogWriter,
    log_path_for,
    parse_since,
    prune_logs,
    read_logs,
)


async def collect(logs_dir: Path, **options: object) -> list[LogLine]:
    return [line async for line in read_logs(logs_dir, **options)]  # type: ignore[arg-type]


def write_lines(logs_dir: Path, deployment_id: str, *lines: str) -> None:
    writer = LogWriter(logs_dir, deployment_id)
    for line in lines:
        writer.write("stdout", line)
    writer.close()


def test_files_are_numbered_per_deployment_and_reused_on_restart(tmp_path: Path) -> None:
    LogWriter(tmp_path, "dep-a").close()
    first = log_path_for(tmp_path, "dep-a")
    second = log_path_for(tmp_path, "dep-b")
    assert (first.name, second.name) == ("000001-dep-a.ndjson", "000002-dep-b.ndjson")
    assert log_path_for(tmp_path, "dep-a") == first


async def test_reads_across_deployments_in_order_with_tail(tmp_path: Path) -> None:
    write_lines(tmp_path, "dep-a", "a1", "a2")
    write_lines(tmp_path, "dep-b", "b1", "b2", "b3")
    everything = await collect(tmp_path)
    assert [(x.deployment_id, x.line) for x in everything] == [
        ("dep-a", "a1"),
        ("dep-a", "a2"),
        ("dep-b", "b1"),
        ("dep-b", "b2"),
        ("dep-b", "b3"),
    ]
    assert [x.line for x in await collect(tmp_path, tail=4)] == ["a2", "b1", "b2", "b3"]
    assert await collect(tmp_path, tail=0) == []


async def test_cursor_resumes_right_after_a_line(tmp_path: Path) -> None:
    write_lines(tmp_path, "dep-a", "a1", "a2")
    first = await collect(tmp_path)
    write_lines(tmp_path, "dep-a", "a3")
    write_lines(tmp_path, "dep-b", "b1")
    resumed = await collect(tmp_path, cursor=first[0].cursor)
    assert [x.line for x in resumed] == ["a2", "a3", "b1"]
    assert await collect(tmp_path, cursor=resumed[-1].cursor) == []


async def test_since_filters_by_timestamp(tmp_path: Path) -> None:
    write_lines(tmp_path, "dep-a", "old")
    lines = await collect(tmp_path)
    assert await collect(tmp_path, since="2999-01-01T00:00:00Z") == []
    assert [x.line for x in await collect(tmp_path, since=lines[0].ts)] == ["old"]
    assert [x.line for x in await collect(tmp_path, since="1h")] == ["old"]


def test_parse_since_accepts_durations_and_iso_times() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_since("90s", now=now) == "2026-01-02T03:02:35.000000Z"
    assert parse_since("2026-01-02T03:04:05+01:00") == "2026-01-02T02:04:05.000000Z"
    assert parse_since("1.5h", now=now) == "2026-01-02T01:34:05.000000Z"
    with pytest.raises(BadRequest):
        parse_since("yesterday")
    with pytest.raises(BadRequest, match="too far back"):
        parse_since("99999999999999h")


def test_bad_arguments_are_bad_requests_before_any_line(tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        read_logs(tmp_path, cursor="nope")
    with pytest.raises(BadRequest):
        read_logs(tmp_path, tail=-1)
    with pytest.raises(BadRequest):
        read_logs(tmp_path, since="last week")


async def test_torn_last_line_waits_until_complete(tmp_path: Path) -> None:
    write_lines(tmp_path, "dep-a", "whole")
    path = log_path_for(tmp_path, "dep-a")
    with path.open("a") as handle:
        handle.write('{"ts": "x", "stream": "stdout", "li')
    assert [x.line for x in await collect(tmp_path)] == ["whole"]


async def test_follow_streams_new_lines_of_a_real_process(runtime: LocalRuntime) -> None:
    release = extracted_release(runtime.settings.data_dir, "talker")
    observed = await runtime.deploy(release, Recorder())
    seen: list[LogLine] = []

    async def follow() -> None:
        async for line in runtime.logs("talker", follow=True):
            seen.append(line)

    task = asyncio.create_task(follow())
    try:
        await get_json(observed.endpoint + "/first")
        await eventually(lambda: _has(seen, "request GET /first"))
        await get_json(observed.endpoint + "/second")
        await eventually(lambda: _has(seen, "request GET /second"))
    finally:
        task.cancel()
    assert seen[0].line.startswith("booting " + release.deployment_id)
    assert all(x.deployment_id == release.deployment_id for x in seen)
    resumed = [x async for x in runtime.logs("talker", cursor=seen[0].cursor)]
    assert resumed[0].line == seen[1].line


async def _has(lines: list[LogLine], text: str) -> bool:
    return any(x.line == text for x in lines)


async def test_pruning_keeps_the_newest_deployments_and_cursors_still_resume(
    tmp_path: Path,
) -> None:
    for index in range(1, 5):
        write_lines(tmp_path, f"dep-{index}", f"line {index}")
    old_cursor = (await collect(tmp_path))[0].cursor  # points into dep-1's file
    deleted = prune_logs(tmp_path, keep=2)
    assert [p.name for p in deleted] == ["000001-dep-1.ndjson", "000002-dep-2.ndjson"]
    assert [x.line for x in await collect(tmp_path, cursor=old_cursor)] == ["line 3", "line 4"]
    write_lines(tmp_path, "dep-5", "line 5")
    assert log_path_for(tmp_path, "dep-5").name == "000005-dep-5.ndjson"


NOISY_JS = r"""
// Several lines per write, CRLF, bytes that are not UTF-8, a line longer than the
// supervisor's limit, a partial line completed by a later write, then the plain app.
process.stdout.write("one\ntwo\r\nthree \"quoted\" \\ é ✓ \u2028 sep\n");
process.stdout.write(Buffer.from([0x62, 0x61, 0x64, 0xff, 0x0a]));
process.stderr.write("to stderr\n");
process.stdout.write("x".repeat(70000) + "\n");
process.stdout.write("half ");
setTimeout(() => {
  process.stdout.write("and half\n");
  require("./server.js");
}, 50);
"""


async def test_the_supervisor_writes_each_chunk_of_output_as_whole_lines(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    source = tmp_path / "noisy"
    shutil.copytree(PLAIN_APP, source)
    (source / "noisy.js").write_text(NOISY_JS)
    release = extracted_release(
        runtime.settings.data_dir, "noisy", source=source, start_command="node noisy.js"
    )
    await runtime.deploy(release, Recorder())
    logs_dir = runtime.apps_dir / "noisy" / "logs"

    async def booted() -> bool:
        return any(x.line.startswith("booting") for x in await collect(logs_dir))

    await eventually(booted)
    lines = await collect(logs_dir)
    stdout = [x.line for x in lines if x.stream == "stdout"]
    stdout = stdout[: stdout.index("half and half") + 1]
    assert stdout[:4] == ["one", "two", 'three "quoted" \\ é ✓ \u2028 sep', "bad\ufffd"]
    # whole, or cut at the supervisor's line limit when it outgrew what it had read so far
    assert "".join(stdout[4:-1]) == "x" * 70000 and len(stdout[4:-1]) <= 2
    assert stdout[-1] == "half and half"
    assert [x.line for x in lines if x.stream == "stderr"][0] == "to stderr"


@pytest.mark.parametrize("instance", ["host/2", ""])
def test_any_text_survives_the_log_files(tmp_path: Path, instance: str) -> None:
    # Records naming their process are read one by one, the others a column at a time:
    # both give the same lines.
    texts = ['say "hi"', "back\\slash", "tab\there", "é ✓ 🚀 \u2028", "\x1b[31mred\x1b[0m", ""]
    writer = LogWriter(tmp_path, "dep-a", instance=instance)
    writer.write_lines("stderr", texts)
    writer.write_lines("stdout", ["last"])
    writer.close()
    batch = read_batch(tmp_path, None, instance="reader-host")
    assert [(x.ts[:2], x.deployment_id, x.stream, x.instance, x.line) for x in batch.lines] == [
        ("20", "dep-a", "stderr", instance or "reader-host", text) for text in texts
    ] + [("20", "dep-a", "stdout", instance or "reader-host", "last")]


def test_a_foreign_record_among_the_supervisors_is_read_line_by_line(tmp_path: Path) -> None:
    write_lines(tmp_path, "dep-a", "one")
    with log_path_for(tmp_path, "dep-a").open("a") as handle:
        handle.write('{"ts": "2026-01-01T00:00:00.000000Z", "stream": "stdout", "line": 7}\n')
        handle.write('{"ts": "2026-01-01T00:00:00.000000Z", "line": "no stream"}\n')
    write_lines(tmp_path, "dep-a", "two")
    batch = read_batch(tmp_path, None)
    assert [(x.stream, x.line) for x in batch.lines] == [
        ("stdout", "one"),
        ("stdout", "no stream"),
        ("stdout", "two"),
    ]


async def test_a_chunk_larger_than_the_limit_keeps_its_newest_lines(tmp_path: Path) -> None:
    # One read of a chatty app's output can hold more than the app's whole log budget: it is
    # spread over files at record boundaries, so pruning drops its oldest lines, never its last.
    writer = LogWriter(tmp_path, "dep-a", max_bytes=64 * 1024)
    lines = [f"{i} {'x' * 1000}" for i in range(300)] + ["done", "y" * 40_000]
    writer.write_lines("stdout", lines)
    writer.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) > 1
    assert sum(path.stat().st_size for path in files) <= 64 * 1024 + 41_000
    assert all(path.stat().st_size <= writer.file_limit for path in files[:-1])
    assert [x.line for x in await collect(tmp_path, tail=2)] == ["done", "y" * 40_000]

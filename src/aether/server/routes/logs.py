"""``GET /apps/{app}/logs``: an app's output as NDJSON, read from the database.

Workers ship every runtime's output into ``log_lines`` (:mod:`aether.worker.logship`), so
every API replica gives the same answer. Each line is ``{ts, deployment_id, instance, stream,
line, cursor}``; ``cursor`` is the line's number in the app's sequence, the same on every
replica: passing it back resumes right after that line, here or on another replica, with no
line lost or repeated. ``stream`` is ``stdout``/``stderr`` for the app's output and ``notice``
where the stream says what it sees instead (lines dropped because shipping fell behind, a pod
not scheduled, nothing stored yet and no live worker to ship it). ``tail`` keeps the last N
lines, ``since`` drops older ones (ISO-8601 time or a duration like ``10m``), ``follow=true``
keeps the response open and streams new lines until the client goes away or the server shuts
down. A database that cannot be read is a 503 before the first line, never an empty answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from aether.errors import BadRequest
from aether.server.auth import require_app_access
from aether.server.jsonbody import int_param
from aether.server.openapi import STR, obj, operation, param
from aether.server.responses import render_json
from aether.server.state import ServerState, get_state
from aether.since import parse_since
from aether.store import apps as app_store
from aether.store import logs as log_store
from aether.store import workers as worker_store
from aether.store.clock import now_iso
from aether.store.database import Row

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
PAGE_LINES = 1000  # lines per query while reading history
FOLLOW_POLL_SECS = 0.2  # how often a follow looks for new lines when not woken for them
# While notifications are heard a follow is woken when its app's lines are stored; it still
# looks this often, in case one was missed.
FOLLOW_SAFETY_SECS = 2.0
CONTAINERS = ("fetch", "app")


def _flag(raw: str | None, name: str) -> bool:
    value = (raw or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"{name}={raw!r} is not a boolean (use true or false)")


def _tail(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    return int_param(raw, "tail", default=0)


def _cursor(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"invalid cursor {raw!r}: pass the cursor of an earlier log line")
    return int(raw)


def _since(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return parse_since(raw).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _instance_suffix(raw: str | None, runtime: str) -> str | None:
    """``container`` as a filter on ``instance`` (Kubernetes: ``pod/container``)."""
    if not raw:
        return None
    if raw not in CONTAINERS:
        raise BadRequest(f"container={raw!r}: use one of {', '.join(CONTAINERS)}")
    if runtime != "kubernetes":
        if raw != "app":
            raise BadRequest(
                f"container={raw!r}: the local runtime runs one process per app ('app')"
            )
        return None
    return "/" + raw


@dataclass(frozen=True)
class _Query:
    app_id: str
    app_name: str
    tail: int | None
    since: str | None
    follow: bool
    after: int | None
    instance_suffix: str | None


async def app_logs(request: Request) -> StreamingResponse:
    state = get_state(request)
    app_row = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app_row, write=False)
    params = request.query_params
    tail = _tail(params.get("tail"))
    if tail is not None and tail < 0:
        raise BadRequest("tail must be zero or more")
    query = _Query(
        app_id=app_row["id"],
        app_name=app_row["name"],
        tail=tail,
        since=_since(params.get("since")),
        follow=_flag(params.get("follow"), "follow"),
        after=_cursor(params.get("cursor")),
        instance_suffix=_instance_suffix(params.get("container"), state.settings.runtime),
    )
    head = await log_store.stream_head(state.db, query.app_id)  # unreadable: a 503 now
    return StreamingResponse(
        _ndjson(state, query, head),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _ndjson(state: ServerState, query: _Query, head: Row | None) -> AsyncIterator[bytes]:
    """The lines as NDJSON until they end, the client leaves, or the server begins shutting
    down; one chunk per page (a chunk per line costs more). A client that leaves cancels
    this generator at its next ``await``: that is no error."""
    sent = 0
    async for chunk, count in _pages(state, query, head):
        sent += count
        yield chunk
    if sent == 0 and head is None and not query.follow:
        yield _encode([await _nothing_stored(state, query.app_name)])


async def _pages(
    state: ServerState, query: _Query, head: Row | None
) -> AsyncIterator[tuple[bytes, int]]:
    """The lines in pages, oldest first (non-empty pages only), each encoded with how many
    lines it holds; with follow, unending."""
    db = state.db
    after = query.after
    if after is None and query.tail is not None:
        upto = int(head["last_seq"]) if head else 0
        rows = await log_store.read_tail(
            db,
            query.app_id,
            query.tail,
            upto=upto,
            since=query.since,
            instance_suffix=query.instance_suffix,
        )
        if rows:
            yield _encode(rows), len(rows)
        after = upto
    after = after or 0
    if query.follow and head is None and query.after is None:
        yield _encode([await _nothing_stored(state, query.app_name)]), 1
    last = int(head["last_seq"]) if head else 0
    with state.line_wakeups.waiting(query.app_id) as stored:
        if query.follow:  # waiting from now on: what was stored before shows in a new head
            last = await _last_seq(state, query.app_id)
        while True:
            while after < last:  # everything up to `last` is committed: read it in ranges
                upto = min(after + PAGE_LINES, last)
                rows = await log_store.read_after(
                    db,
                    query.app_id,
                    after,
                    limit=PAGE_LINES,
                    upto=upto,
                    since=query.since,
                    instance_suffix=query.instance_suffix,
                )
                after = upto
                if rows:
                    yield _encode(rows), len(rows)
            if not query.follow or state.stopping.is_set():
                return
            heard = state.line_wakeups.heard
            await _first(stored, state.stopping, FOLLOW_SAFETY_SECS if heard else FOLLOW_POLL_SECS)
            stored.clear()  # before the read: lines stored after it wake the next wait
            last = await _last_seq(state, query.app_id)


async def _last_seq(state: ServerState, app_id: str) -> int:
    head = await log_store.stream_head(state.db, app_id)
    return int(head["last_seq"]) if head else 0


async def _first(one: asyncio.Event, other: asyncio.Event, timeout: float) -> None:
    """Until either event is set, at most ``timeout`` seconds."""
    waits = [asyncio.ensure_future(one.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _nothing_stored(state: ServerState, app_name: str) -> _Line:
    """The notice for an app with no stored output: say why, never answer empty."""
    runtime = state.settings.runtime
    text = f"no output of {app_name} is stored yet"
    if not await worker_store.has_live_worker(state.db, runtime):
        text += f"; no live worker for runtime {runtime} ships it"
    return (None, now_iso(), "", "", "notice", text)


# A stored line, or a notice with no place in the sequence (no cursor).
_Line = log_store.StoredLine | tuple[None, str, str, str, str, str]


def _encode(rows: Sequence[_Line]) -> bytes:
    """Lines as NDJSON, each a dict built from its tuple and encoded once; the bytes joined
    with each line's newline already on it (joining with a separator costs more)."""
    return b"".join(
        [
            render_json(
                {
                    "ts": ts,
                    "deployment_id": deployment_id,
                    "instance": instance,
                    "stream": stream,
                    "line": line,
                    "cursor": "" if seq is None else str(seq),
                }
            )
            + b"\n"
            for seq, ts, deployment_id, instance, stream, line in rows
        ]
    )


ROUTES = [Route("/apps/{app}/logs", app_logs, methods=["GET"])]

LOG_LINE = obj(
    {"ts": STR, "deployment_id": STR, "instance": STR, "stream": STR, "line": STR, "cursor": STR}
)
OPENAPI = {
    "/apps/{app}/logs": {
        "get": operation(
            "An app's output as NDJSON lines (follow=true streams new lines); the same on "
            "every replica, resumable anywhere with a line's cursor",
            params=[
                param("app"),
                param("tail", where="query", schema={"type": "integer", "minimum": 0}),
                param("since", where="query"),
                param("follow", where="query", schema={"type": "boolean"}),
                param("cursor", where="query"),
                param("container", where="query"),
            ],
            response=LOG_LINE,
            media_type="application/x-ndjson",
            errors=(400, 401, 403, 404, 503),
        )
    }
}

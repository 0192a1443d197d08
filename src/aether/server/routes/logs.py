"""``GET /apps/{app}/logs``: an app's output as NDJSON, from the runtime's log source.

Each line is ``{ts, deployment_id, stream, line, cursor}``; passing a line's ``cursor`` back
resumes right after it. ``stream`` is ``stdout`` or ``stderr`` for the app's output and
``notice`` where the runtime says what it sees instead (Kubernetes: the app has no pods, a pod
is not scheduled, still in its init container, gone) — never an empty answer that hides it. ``tail`` keeps the last N lines, ``since`` drops older ones (ISO-8601
time or a duration like ``10m``), ``follow=true`` keeps the response open and streams new lines
until the client goes away or the server shuts down. The log source is the runtime given to
``create_app`` as ``log_source`` (anything with the runtime interface's ``logs``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from aether.errors import BadRequest, ServiceUnavailable
from aether.server.auth import require_app_access
from aether.server.openapi import STR, obj, operation, param
from aether.server.state import get_state
from aether.store import apps as app_store

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


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
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"tail={raw!r} is not an integer") from exc
    if value < 0:
        raise BadRequest("tail must be zero or more")
    return value


async def app_logs(request: Request) -> StreamingResponse:
    state = get_state(request)
    app_row = await app_store.require_app(state.db, request.path_params["app"])
    require_app_access(request, app_row, write=False)
    if state.log_source is None:
        raise ServiceUnavailable(
            "this control plane has no log source; run `aether serve` with its worker, "
            "or on the machine that runs the apps"
        )
    query = request.query_params
    lines = state.log_source.logs(
        app_row["name"],
        tail=_tail(query.get("tail")),
        since=query.get("since") or None,
        follow=_flag(query.get("follow"), "follow"),
        cursor=query.get("cursor") or None,
        container=query.get("container") or None,
    )
    return StreamingResponse(
        _ndjson(lines, state.stopping),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _ndjson(lines: AsyncIterator[Any], stopping: asyncio.Event) -> AsyncIterator[bytes]:
    """Encode lines until they end, or until the server begins shutting down."""
    iterator = aiter(lines)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            step = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
            if step not in done:
                step.cancel()
                return
            try:
                line = step.result()
            except StopAsyncIteration:
                return
            yield (json.dumps(line.as_json(), ensure_ascii=False) + "\n").encode("utf-8")
    finally:
        stop.cancel()
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()


ROUTES = [Route("/apps/{app}/logs", app_logs, methods=["GET"])]

LOG_LINE = obj({"ts": STR, "deployment_id": STR, "stream": STR, "line": STR, "cursor": STR})
OPENAPI = {
    "/apps/{app}/logs": {
        "get": operation(
            "An app's output as NDJSON lines (follow=true streams new lines)",
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

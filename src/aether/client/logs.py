"""An app's output: history, then (with ``follow``) live lines, surviving dropped connections.

``GET /apps/{app}/logs?tail=&since=&follow=&cursor=`` answers NDJSON lines
``{ts, deployment_id, instance, stream, line, cursor}``; a cursor means the same on every API
replica, so a follow may reconnect to another one. After a dropped connection (or a read timeout,
which catches connections that died silently) the client reconnects with the last line's
``cursor`` instead of ``tail``/``since``, so no line is lost or printed twice. It gives up with
a NetworkError after ``give_up_secs`` without a successful connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aether.client.api import READ_TIMEOUT_SECS, ApiClient
from aether.errors import NetworkError

LineCallback = Callable[[dict[str, Any]], None]
FOLLOW_READ_TIMEOUT_SECS = 90.0


@dataclass(frozen=True)
class LogQuery:
    """What to show: the last ``tail`` lines and/or lines since a time, optionally live."""

    app: str
    tail: int | None = None
    since: str | None = None
    follow: bool = False
    container: str | None = None  # Kubernetes: "fetch" or "app"; default both


def stream_logs(
    api: ApiClient,
    query: LogQuery,
    on_line: LineCallback,
    *,
    give_up_secs: float = 30.0,
    reconnect_secs: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print lines through ``on_line`` and return how many; with follow, runs until interrupted."""
    cursor: str | None = None
    count = 0
    failing_since: float | None = None
    while True:
        try:
            for entry in api.stream_lines(
                f"/apps/{query.app}/logs",
                request_params(query, cursor),
                read_timeout=FOLLOW_READ_TIMEOUT_SECS if query.follow else READ_TIMEOUT_SECS,
            ):
                failing_since = None
                on_line(entry)
                count += 1
                # A stored line (a notice too: "N lines dropped") has a cursor; a notice of
                # what the server sees right now has none and does not move it.
                cursor = entry.get("cursor") or cursor
        except NetworkError:
            if not query.follow:
                raise
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > give_up_secs:
                raise
        if not query.follow:
            return count
        sleep(reconnect_secs)


def request_params(query: LogQuery, cursor: str | None) -> dict[str, Any]:
    """First request: tail/since; every reconnect: only the cursor of the last line seen."""
    params: dict[str, Any] = {"follow": query.follow}
    if query.container:
        params["container"] = query.container
    if cursor is None:
        params["tail"] = query.tail
        params["since"] = query.since
    else:
        params["cursor"] = cursor
    return params

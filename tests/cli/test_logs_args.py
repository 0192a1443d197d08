"""`aether logs` option parsing and line rendering."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest

from aether.cli.logs import format_line, one_app, parse_since
from aether.client.logs import LogQuery, request_params

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30s", "2026-11-28T11:59:30Z"),
        ("10m", "2026-11-28T11:50:00Z"),
        ("2h", "2026-11-28T10:00:00Z"),
        ("1d", "2026-11-27T12:00:00Z"),
        ("1.5h", "2026-11-28T10:30:00Z"),
        ("2026-11-28T08:00:00Z", "2026-11-28T08:00:00Z"),
    ],
)
def test_since_accepts_durations_and_timestamps(value: str, expected: str) -> None:
    assert parse_since(value, now=NOW) == expected


def test_since_rejects_anything_else() -> None:
    with pytest.raises(click.BadParameter, match="duration"):
        parse_since("yesterday", now=NOW)
    with pytest.raises(click.BadParameter, match="too far back"):
        parse_since("99999999999999h", now=NOW)


def test_first_request_asks_for_tail_and_reconnects_only_for_the_cursor() -> None:
    query = LogQuery(app="web", tail=50, since="2026-11-28T08:00:00Z", follow=True)
    assert request_params(query, None) == {
        "follow": True,
        "tail": 50,
        "since": "2026-11-28T08:00:00Z",
    }
    assert request_params(query, "c-41") == {"follow": True, "cursor": "c-41"}


def test_a_container_is_asked_for_on_every_request() -> None:
    query = LogQuery(app="web", follow=True, container="fetch")
    assert request_params(query, None)["container"] == "fetch"
    assert request_params(query, "c-7") == {"follow": True, "container": "fetch", "cursor": "c-7"}


def test_stderr_lines_are_marked() -> None:
    assert format_line({"ts": "T", "stream": "stdout", "line": "hi"}) == "T hi"
    assert format_line({"ts": "T", "stream": "stderr", "line": "boom"}) == "T ! boom"
    assert format_line({"ts": "T", "stream": "notice", "line": "pod x is gone"}) == (
        "T aether: pod x is gone"
    )


def test_the_app_is_an_argument_or_the_option() -> None:
    assert one_app("web", None) == one_app(None, "web") == one_app("web", "web") == "web"
    assert one_app(None, None) is None
    with pytest.raises(click.UsageError, match="different apps"):
        one_app("web", "api")

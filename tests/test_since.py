"""The one ``since`` parser behind ``aether logs --since`` and both runtimes' log queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aether.since import MAX_DAYS, parse_duration, parse_since

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1.5h", 5400), ("2d", 172800), (" 0.5s ", 0.5), ("0s", 0)],
)
def test_durations_in_whole_and_decimal_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_since(text, now=NOW) == NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["99999999999999h", f"{MAX_DAYS + 1}d", "9" * 400 + "s"])
def test_absurd_durations_are_refused_instead_of_overflowing(text: str) -> None:
    with pytest.raises(ValueError, match=f"too far back: at most {MAX_DAYS}d"):
        parse_since(text, now=NOW)


def test_the_longest_duration_still_answers() -> None:
    assert parse_since(f"{MAX_DAYS}d", now=NOW) == NOW - timedelta(days=MAX_DAYS)


def test_times_are_read_in_utc() -> None:
    assert parse_since("2026-01-02T03:04:05+01:00") == datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert parse_since("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_since("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "", "10", "10 m", "-5m", "1e3s", "1.h"])
def test_anything_else_names_the_accepted_forms(text: str) -> None:
    assert parse_duration(text) is None
    with pytest.raises(ValueError, match="neither a duration .* nor an RFC 3339 time"):
        parse_since(text, now=NOW)

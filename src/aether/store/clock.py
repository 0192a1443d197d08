"""Timestamps as the store keeps them: ISO-8601 UTC strings that sort lexicographically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now_iso(offset_secs: float = 0.0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_secs)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))

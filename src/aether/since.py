"""The ``since`` of a log query: a duration back from now (``30s``, ``10m``, ``1.5h``, ``2d``)
or a point in time (RFC 3339 / ISO 8601; without an offset it is UTC).

One parser for ``aether logs --since`` and for both runtimes' ``GET /apps/{app}/logs?since=``,
so the local and the Kubernetes runtime answer the same question the same way. Pure: the
caller passes ``now`` and turns the ValueError into its own error (a usage error, a 400).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Longer is a typo, not a question about logs, and would overflow a datetime.
MAX_DAYS = 36500


def parse_duration(text: str) -> timedelta | None:
    """``text`` as a duration, or None when it is not shaped like one; ValueError when it is
    longer than ``MAX_DAYS``."""
    match = _DURATION.match(text.strip())
    if match is None:
        return None
    seconds = float(match[1]) * _UNIT_SECS[match[2]]  # a huge number of digits is inf
    if not seconds <= MAX_DAYS * 86400:
        raise ValueError(f"since {text!r} reaches too far back: at most {MAX_DAYS}d")
    return timedelta(seconds=seconds)


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """The moment ``value`` names, in UTC; ValueError naming the accepted forms otherwise."""
    delta = parse_duration(value)
    if delta is not None:
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since {value!r} is neither a duration (30s, 10m, 1.5h, 2d) nor an RFC 3339 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)

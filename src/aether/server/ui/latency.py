"""Deploy latency from deployment rows (pure): p50/p95 of deploy duration per day, for the
whole platform and per app, and the phase that dominates.

A deploy's duration is the client's own ``total`` when it reported one (``aether deploy``:
install to running, as a developer waits for it), else the server's view from the
deployment's creation to its rollout's end. Times are seconds; days are UTC dates.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aether.models import REPORT_PHASES


@dataclass(frozen=True)
class Sample:
    app: str
    day: date
    seconds: float
    phases: Mapping[str, float]  # ms per reported phase (empty: no report)


@dataclass
class Summary:
    """One app's (or the platform's) figures over the window."""

    name: str
    deploys: int = 0
    p50: float | None = None
    p95: float | None = None
    dominant: str | None = None  # the phase with the largest median share
    by_day: dict[date, tuple[float, float]] = field(default_factory=dict)  # day → (p50, p95)


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def samples(rows: Iterable[Mapping[str, Any]]) -> list[Sample]:
    found = []
    for row in rows:
        timings = json.loads(row["timings"]) if row.get("timings") else {}
        created = _parse(row["created_at"])
        if "total" in timings:
            seconds = float(timings["total"]) / 1000
        elif row.get("rollout_completed_at"):
            seconds = (_parse(row["rollout_completed_at"]) - created).total_seconds()
        else:
            continue
        phases = {p: float(timings[p]) for p in REPORT_PHASES if p in timings}
        found.append(Sample(row["app_name"], created.astimezone(UTC).date(), seconds, phases))
    return found


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def dominant_phase(found: list[Sample]) -> str | None:
    """The phase whose median time is largest among deploys that reported phases."""
    per_phase: dict[str, list[float]] = defaultdict(list)
    for sample in found:
        for phase, value in sample.phases.items():
            per_phase[phase].append(value)
    if not per_phase:
        return None
    return max(per_phase, key=lambda phase: statistics.median(per_phase[phase]))


def summarise(name: str, found: list[Sample]) -> Summary:
    summary = Summary(name=name, deploys=len(found))
    if not found:
        return summary
    seconds = [s.seconds for s in found]
    summary.p50, summary.p95 = percentile(seconds, 50), percentile(seconds, 95)
    summary.dominant = dominant_phase(found)
    days: dict[date, list[float]] = defaultdict(list)
    for sample in found:
        days[sample.day].append(sample.seconds)
    summary.by_day = {
        day: (percentile(values, 50), percentile(values, 95)) for day, values in days.items()
    }
    return summary


def window(today: date, days: int) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def chart_data(summary: Summary, days: list[date], baseline: float | None) -> dict[str, Any]:
    """The series the page's chart draws (uPlot's column layout): x as UNIX seconds, p50,
    p95 (null on days without deploys) and the baseline (null when none was recorded)."""
    xs = [int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) for d in days]
    p50 = [_round(summary.by_day.get(d, (None, None))[0]) for d in days]
    p95 = [_round(summary.by_day.get(d, (None, None))[1]) for d in days]
    line = [baseline] * len(days) if baseline is not None else None
    return {"x": xs, "p50": p50, "p95": p95, "baseline": line, "name": summary.name}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)

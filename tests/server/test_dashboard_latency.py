"""The latency page's figures (pure): durations, percentiles per day, the dominant phase."""

from __future__ import annotations

import json
from datetime import date

from aether.server.ui import latency
from aether.server.ui.views import timing_bar


def _row(app, created, *, total=None, completed=None, **phases):
    timings = {**phases, **({"total": total} if total is not None else {})}
    return {
        "app_name": app,
        "created_at": created,
        "rollout_completed_at": completed,
        "timings": json.dumps(timings) if timings else None,
    }


def test_a_reported_total_wins_over_the_servers_view_and_unfinished_rows_are_skipped():
    rows = [
        _row("web", "2026-01-02T10:00:00Z", total=4000, completed="2026-01-02T10:00:30Z"),
        _row("web", "2026-01-02T11:00:00Z", completed="2026-01-02T11:00:02.5Z"),
        _row("web", "2026-01-02T12:00:00Z"),  # no report, never completed
    ]
    found = latency.samples(rows)
    assert [s.seconds for s in found] == [4.0, 2.5]
    assert found[0].day == date(2026, 1, 2)


def test_percentiles_interpolate_between_ranks():
    values = [float(v) for v in range(1, 21)]
    assert latency.percentile(values, 50) == 10.5
    assert round(latency.percentile(values, 95), 2) == 19.05
    assert latency.percentile([7.0], 95) == 7.0


def test_the_dominant_phase_is_the_one_with_the_largest_median():
    rows = [
        _row("web", "2026-01-02T10:00:00Z", total=9000, install=5000, upload=100, rollout=900),
        _row("web", "2026-01-03T10:00:00Z", total=9000, install=200, upload=4000, rollout=800),
        _row("api", "2026-01-03T11:00:00Z", total=9000, install=300, upload=3000, rollout=700),
    ]
    summary = latency.summarise("all", latency.samples(rows))
    assert summary.deploys == 3 and summary.dominant == "upload"
    assert set(summary.by_day) == {date(2026, 1, 2), date(2026, 1, 3)}


def test_the_chart_has_a_gap_on_days_without_deploys_and_a_flat_baseline():
    rows = [_row("web", "2026-01-03T10:00:00Z", total=2000)]
    summary = latency.summarise("web", latency.samples(rows))
    chart = latency.chart_data(summary, latency.window(date(2026, 1, 3), 3), 95.0)
    assert chart["p50"] == [None, None, 2.0] and chart["baseline"] == [95.0] * 3
    assert latency.chart_data(summary, [date(2026, 1, 3)], None)["baseline"] is None


def test_the_phase_bar_stacks_reported_phases_in_order():
    bar = timing_bar({"rollout": 300, "install": 100, "total": 999})
    assert [(s["phase"], s["x"], s["width"]) for s in bar] == [
        ("install", 0.0, 25.0),
        ("rollout", 25.0, 75.0),
    ]
    assert timing_bar({}) == []

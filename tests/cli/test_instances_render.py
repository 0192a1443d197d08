"""`aether ps` and `status` as text: the table, the age column, the worker warning."""

from __future__ import annotations

from datetime import UTC, datetime

from aether.cli.instances import _render_ps, _render_status, age

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_age_of_an_instance() -> None:
    assert age(None) == "-" and age("not a time") == "-"
    assert age("2026-01-02T03:04:00.000000Z", now=NOW) == "5s"
    assert age("2026-01-02T02:54:05.000000Z", now=NOW) == "10m"
    assert age("2026-01-01T01:04:05Z", now=NOW) == "1d"


def status(**extra: object) -> dict[str, object]:
    item = {
        "id": "0b7e6f0e-1", "deployment_id": "0b7e6f0e", "release": 3, "state": "running",
        "health": "healthy", "restarts": 2, "started_at": None, "host": "apps-1",
        "worker": "local:apps-1:4f2a",
    }  # fmt: skip
    base: dict[str, object] = {
        "app": "web", "release": 3, "replicas": 2, "instances": [item],
        "last_rollout": {"release": 3, "status": "failed", "failure_reason": "exited with 3",
                         "reason": "restart"},
        "worker": {"live": True, "message": None},
    }  # fmt: skip
    return {**base, **extra}


def test_ps_lists_each_instance_in_columns() -> None:
    lines = _render_ps(status()).splitlines()
    assert lines[0] == "web  release v3"
    assert lines[1].split() == [
        "ID", "RELEASE", "STATE", "HEALTH", "RESTARTS", "AGE", "HOST", "WORKER"
    ]  # fmt: skip
    assert lines[2].split() == [
        "0b7e6f0e-1", "v3", "running", "healthy", "2", "-", "apps-1", "local:apps-1:4f2a"
    ]  # fmt: skip


def test_status_sums_up_and_warns_without_a_live_worker() -> None:
    text = _render_status(status())
    assert "instances  1/2 healthy" in text
    assert "last restart  v3 failed: exited with 3" in text
    gone = status(worker={"live": False, "message": "no live worker for runtime local"})
    assert _render_ps(gone).endswith("warning: no live worker for runtime local")
    stopped = _render_ps(status(replicas=0, instances=[]))
    assert "release v3 (scaled to 0)" in stopped and "no instances" in stopped

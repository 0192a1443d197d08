"""`aether releases` as text: scale releases, and each restart listed above the release it
restarted (a restart is another rollout of a release, not a new one)."""

from __future__ import annotations

from typing import Any

from aether.cli.releases import render


def release(version: int, description: str, **extra: Any) -> dict[str, Any]:
    base = {
        "version": version, "description": description, "artifact_digest": "ab" * 32,
        "config_version": 1, "replicas": 1, "status": "superseded", "created_by": "a@x.io",
        "created_at": None, "restarts": 0, "restarted": [],
    }  # fmt: skip
    return {**base, **extra}


def restart(status: str, by: str | None = "b@x.io") -> dict[str, Any]:
    return {"deployment_id": "d", "status": status, "created_by": by, "created_at": None}


def test_restarts_are_listed_above_their_release_newest_first() -> None:
    text = render(
        {
            "app": "web",
            "releases": [
                release(2, "Scale to 3 replicas", replicas=3, status="running",
                        restarts=2, restarted=[restart("running"), restart("failed")]),
                release(1, "Deploy abababababab"),
            ],
        }
    )  # fmt: skip
    lines = [line.split() for line in text.splitlines()]
    assert lines[0][:2] == ["RELEASE", "DESCRIPTION"]
    assert [(row[0], " ".join(row[1:4])) for row in lines[1:3]] == [
        ("v2", "Restart of v2"),
        ("v2", "Restart of v2"),
    ]
    assert "running" in lines[1] and "failed" in lines[2] and "b@x.io" in lines[1]
    assert lines[3][:5] == ["v2", "Scale", "to", "3", "replicas"] and "running" in lines[3]
    assert lines[4][:2] == ["v1", "Deploy"]


def test_older_restarts_beyond_those_listed_are_counted() -> None:
    text = render(
        {
            "app": "web",
            "releases": [release(1, "Deploy x", restarts=12, restarted=[restart("running")] * 10)],
        }
    )
    assert "(and 2 earlier restarts of it)" in text

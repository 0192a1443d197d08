"""`aether list` table rendering."""

from __future__ import annotations

from datetime import UTC, datetime

from aether.cli.listing import age, render_apps, render_deployments

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def test_age_in_the_largest_whole_unit() -> None:
    assert age("2026-11-28T11:59:50Z", now=NOW) == "10s"
    assert age("2026-11-28T11:35:00+00:00", now=NOW) == "25m"
    assert age("2026-11-28T07:00:00", now=NOW) == "5h"
    assert age("2026-11-25T12:00:00Z", now=NOW) == "3d"
    assert age(None) == "-" and age("garbage") == "-"


def test_apps_table_has_status_digest_prefix_and_url() -> None:
    text = render_apps(
        {
            "apps": [
                {
                    "name": "web",
                    "url": "http://web.localhost:8080/",
                    "current": {"status": "running", "artifact_digest": "ab" * 32},
                },
                {"name": "idle", "current": None},
            ]
        }
    )
    header, web, idle = text.splitlines()
    assert header.split() == ["NAME", "STATUS", "DIGEST", "AGE", "URL"]
    assert web.split()[:3] == ["web", "running", "abababababab"]
    assert web.endswith("http://web.localhost:8080/")
    assert idle.split()[:3] == ["idle", "-", "-"]


def test_empty_listings_say_what_to_do() -> None:
    assert "aether deploy" in render_apps({"apps": []})
    assert "No deployments of web" in render_deployments({"app": "web", "deployments": []})

"""``aether dashboard``: a one-time link from the live server, printed where no graphical
browser exists; the link signs in once and holds no token."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from typing import Any

from aether.client.dashboard import has_graphical_browser


def test_dashboard_prints_a_one_time_link_without_the_token(live_server: Any) -> None:
    server = live_server()
    env = {k: v for k, v in server.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "aether", "dashboard", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    link = json.loads(done.stdout)
    assert link["opened"] is False
    parts = urllib.parse.urlsplit(link["url"])
    assert f"{parts.scheme}://{parts.netloc}" == server.url and parts.path == "/ui/signin"
    assert server.admin_token not in link["url"]
    text = subprocess.run(
        [sys.executable, "-m", "aether", "dashboard", "--print"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert text.returncode == 0 and "one-time sign-in link" in text.stdout
    assert "/ui/signin?link=" in text.stdout


def test_a_browser_is_opened_only_where_one_can_show():
    assert has_graphical_browser({}, platform="linux") is False
    assert has_graphical_browser({"DISPLAY": ":0"}, platform="linux") is True
    assert has_graphical_browser({"WAYLAND_DISPLAY": "wayland-0"}, platform="linux") is True
    assert has_graphical_browser({}, platform="darwin") is True

"""``aether dashboard``: a one-time sign-in link for the dashboard, opened in a browser.

The link (``POST /signin-links``) holds a random code, never the token; it signs one browser
in as the caller's token within ten minutes, once.
"""

from __future__ import annotations

import os
import sys
import webbrowser
from collections.abc import Mapping
from typing import Any

from aether.client.api import ApiClient


def signin_link(api: ApiClient) -> dict[str, Any]:
    """``{url, expires_at}`` of a new one-time sign-in link."""
    return api.post("/signin-links")


def has_graphical_browser(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether opening a browser can show anything: macOS and Windows always; elsewhere only
    inside a graphical session (a text browser would take over the terminal instead)."""
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def open_browser(url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Open ``url`` in the user's browser; False when there is none to open."""
    if not has_graphical_browser(os.environ if environ is None else environ):
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False

"""Chromium (Debian's ``chromium``) driven by Playwright for Python, and axe-core from its npm
package, for the dashboard's browser tests.

Nothing is downloaded at test time but axe-core, once, into a cache folder
(``${XDG_CACHE_HOME:-~/.cache}/aether-tests/``) with npm. Without ``/usr/bin/chromium`` the
tests are skipped with the reason, unless ``AETHER_TEST_REQUIRE_BROWSER=1`` (``.ci/run``
installs chromium and sets it). Screenshots go to ``AETHER_TEST_OUTPUT`` (default
``build/test-output``) under ``dashboard/``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from plugins.run_shared import exclusive

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_VERSION = "4.11.0"
VIEWPORTS = {"wide": (1280, 800), "narrow": (390, 844)}
REPO = Path(__file__).resolve().parents[2]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("AETHER_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (AETHER_TEST_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def axe_source() -> str:
    """axe-core's browser build, installed from npm into the cache on first use."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "aether-tests" / f"axe-core-{AXE_VERSION}"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    # xdist workers and other test runs share the cache: one installs, the others wait.
    with exclusive(folder.with_name(folder.name + ".lock")):
        if not script.exists():
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                 "--loglevel", "error", f"axe-core@{AXE_VERSION}"],
                check=True, timeout=300, capture_output=True,
            )  # fmt: skip
    return script.read_text(encoding="utf-8")


def output_dir(*parts: str) -> Path:
    root = Path(os.environ.get("AETHER_TEST_OUTPUT") or REPO / "build" / "test-output")
    folder = root.joinpath("dashboard", *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serious_violations(page: Any, axe: str) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: the page's CSP (no inline script) stays on.
        page.evaluate(axe)
    result = page.evaluate("async () => await window.axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]

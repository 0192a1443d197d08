"""The Jinja2 environment of the dashboard's templates (the one place Jinja2 is imported)
and the filters they share: ages, byte counts, durations, short digests."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from aether import __version__
from aether.models import REPORT_PHASES


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("aether.server.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=age, size=size, ms=ms, short=short, clock=clock)
    env.globals.update(version=__version__, phases=REPORT_PHASES)
    return env


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    page = environment().get_template(template)
    html = page.render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


def _moment(iso: str | None) -> datetime | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def age(iso: str | None, now: datetime | None = None) -> str:
    """``3 min ago`` style, from an ISO time."""
    moment = _moment(iso)
    if moment is None:
        return "—"
    secs = max(((now or datetime.now(UTC)) - moment).total_seconds(), 0)
    for limit, unit, name in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h")):
        if secs < limit:
            return f"{int(secs // unit)} {name} ago"
    return f"{int(secs // 86400)} d ago"


def clock(iso: str | None) -> str:
    """``2024-05-01 13:02:07 UTC``."""
    moment = _moment(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def size(count: int | None) -> str:
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def short(digest: str | None) -> str:
    return (digest or "")[:12]

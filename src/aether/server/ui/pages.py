"""The dashboard's pages and the fragments htmx refreshes: apps, one app (releases,
timeline, instances, config names), logs and deploy latency. Reads only; every one checks
access exactly as the API does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from aether.errors import NotFound
from aether.server.auth import require_app_access
from aether.server.routes import logs as logs_route
from aether.server.routes.app_config import config_listing
from aether.server.state import get_state
from aether.server.ui import latency, views
from aether.server.ui.guard import data, page
from aether.server.ui.session import SignedIn
from aether.server.ui.templating import render
from aether.store import apps as app_store
from aether.store import config_vars, deployment_reports
from aether.store.clock import now_iso
from aether.store.database import Row

LATENCY_DAYS = (7, 30, 90)


async def _app(request: Request, *, write: bool = False) -> Row:
    row = await app_store.require_app(get_state(request).db, request.path_params["app"])
    require_app_access(request, row, write=write)
    return row


@page
async def apps_page(request: Request, signed: SignedIn) -> Response:
    query = request.query_params.get("q", "").strip()[:63]
    apps = await views.apps_overview(get_state(request), query)
    context = {"signed": signed, "apps": apps, "q": query}
    if request.headers.get("hx-request"):
        return render(request, "fragments/apps_table.html", context)
    return render(request, "apps.html", context)


async def _app_context(request: Request, signed: SignedIn, app: Row) -> dict:
    state = get_state(request)
    releases = await views.releases(state, app)
    selected = request.query_params.get("deployment") or next(
        (r["deployment_id"] for r in releases if r["deployment_id"]), None
    )
    timeline = await views.timeline(state, selected) if selected else None
    if timeline and timeline["deployment"]["app_id"] != app["id"]:
        timeline = None  # another app's deployment: not shown here
    return {
        "signed": signed,
        "app": app,
        "url": state.app_url(app["name"]),
        "releases": releases,
        "timeline": timeline,
        "instances": await views.instances(state, app),
        "config_names": await views.config_names(state, app),
        "may_write": signed.may_write(app),
    }


@page
async def app_page(request: Request, signed: SignedIn) -> Response:
    app = await _app(request)
    return render(request, "app.html", await _app_context(request, signed, app))


@page
async def releases_fragment(request: Request, signed: SignedIn) -> Response:
    app = await _app(request)
    context = await _app_context(request, signed, app)
    return render(request, "fragments/releases.html", context)


@page
async def timeline_fragment(request: Request, signed: SignedIn) -> Response:
    app = await _app(request)
    timeline = await views.timeline(get_state(request), request.path_params["deployment_id"])
    if timeline is None or timeline["deployment"]["app_id"] != app["id"]:
        raise NotFound(f"app {app['name']!r} has no such deployment")
    context = {"signed": signed, "app": app, "timeline": timeline}
    return render(request, "fragments/timeline.html", context)


@page
async def config_values(request: Request, signed: SignedIn) -> Response:
    """The values, for who may reveal them (admin, the app's owner): as the API's reveal."""
    app = await _app(request, write=True)
    state = get_state(request)
    snapshot = await config_vars.current(state.db, app["id"])
    listing = await config_listing(state, app, snapshot, reveal=True)
    return render(request, "fragments/config_values.html", {"vars": listing["vars"]})


@page
async def logs_page(request: Request, signed: SignedIn) -> Response:
    app = await _app(request)
    return render(request, "logs.html", {"signed": signed, "app": app})


@data
async def logs_stream(request: Request, signed: SignedIn) -> Response:
    """The API's own log stream (``GET /apps/{app}/logs``: cursors, follow) for the page's
    script, authenticated by the session."""
    return await logs_route.app_logs(request)


@page
async def latency_page(request: Request, signed: SignedIn) -> Response:
    state = get_state(request)
    days = _days(request.query_params.get("days"))
    today = datetime.now(UTC).date()
    rows = await deployment_reports.latency_rows(state.db, now_iso(-days * 86400))
    samples = latency.samples(rows)
    chosen = request.query_params.get("app", "")
    per_app: dict[str, list[latency.Sample]] = {}
    for sample in samples:
        per_app.setdefault(sample.app, []).append(sample)
    apps = [latency.summarise(name, found) for name, found in sorted(per_app.items())]
    shown = latency.summarise(chosen or "all apps", per_app.get(chosen, []) if chosen else samples)
    baseline = state.settings.deploy_baseline_secs
    chart = latency.chart_data(shown, latency.window(today, days), baseline)
    context = {
        "signed": signed,
        "days": days,
        "day_choices": LATENCY_DAYS,
        "chosen": chosen,
        "apps": apps,
        "shown": shown,
        "chart": chart,
        "baseline": baseline,
        "since": today - timedelta(days=days - 1),
    }
    return render(request, "latency.html", context)


def _days(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() and int(raw) in LATENCY_DAYS else 30

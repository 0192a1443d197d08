"""The dashboard's routes: ``/`` sends a browser to its apps, everything else lives under
``/ui`` (the API keeps every other path), behind the security headers."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from aether.server.ui import actions, pages
from aether.server.ui.headers import SecurityHeadersMiddleware


async def home(request: Request) -> Response:
    return RedirectResponse("/ui/apps", status_code=303)


_APP = "/apps/{app}"
_PAGES: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/signin", actions.signin_page, methods=["GET"]),
    Route("/signin", actions.signin, methods=["POST"]),
    Route("/signout", actions.signout, methods=["POST"]),
    Route("/apps", pages.apps_page, methods=["GET"]),
    Route(_APP, pages.app_page, methods=["GET"]),
    Route(f"{_APP}/releases", pages.releases_fragment, methods=["GET"]),
    Route(f"{_APP}/deployments/{{deployment_id}}/timeline", pages.timeline_fragment),
    Route(f"{_APP}/config/values", pages.config_values, methods=["GET"]),
    Route(f"{_APP}/rollback", actions.rollback_confirm, methods=["GET"]),
    Route(f"{_APP}/rollback", actions.rollback, methods=["POST"]),
    Route(f"{_APP}/scale", actions.scale, methods=["POST"]),
    Route(f"{_APP}/restart", actions.restart, methods=["POST"]),
    Route(f"{_APP}/logs", pages.logs_page, methods=["GET"]),
    Route(f"{_APP}/logs/stream", pages.logs_stream, methods=["GET"]),
    Route("/latency", pages.latency_page, methods=["GET"]),
    Mount("/static", StaticFiles(packages=[("aether.server.ui", "static")]), name="static"),
]
ROUTES: list[BaseRoute] = [
    Route("/", home, methods=["GET"], middleware=[Middleware(SecurityHeadersMiddleware)]),
    Mount("/ui", routes=_PAGES, middleware=[Middleware(SecurityHeadersMiddleware)]),
]

"""The wrapper every dashboard handler runs in: a live session or the way to sign in, the
API's errors shown as a page, and the CSRF check on forms that change anything."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from aether.errors import AetherError, Unauthorized
from aether.server.errors import RETRY_AFTER_SECS
from aether.server.ui.session import SignedIn, check_csrf, signed_in
from aether.server.ui.templating import render

Handler = Callable[[Request, SignedIn], Awaitable[Response]]
MAX_FORM_FIELDS = 20


def signin_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request"):  # a fragment: send the whole page to sign-in
        return Response(status_code=401, headers={"HX-Redirect": "/ui/signin"})
    return RedirectResponse(f"/ui/signin?next={quote(target, safe='')}", status_code=303)


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page or fragment for a signed-in browser; errors become an error page."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return signin_redirect(request)
        try:
            return await handler(request, signed)
        except AetherError as exc:
            return error_page(request, signed, exc)

    return endpoint


def data(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A stream or document a page's script reads: the session or 401, and the API's JSON
    error envelope (never an HTML page) for anything refused."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            raise Unauthorized("not signed in to the dashboard (or the session ended)")
        return await handler(request, signed)

    return endpoint


def action(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A form post: signed in and carrying the session's CSRF token, or refused (403)."""

    async def checked(request: Request, signed: SignedIn) -> Response:
        form = await read_form(request)
        check_csrf(request, form.get("csrf"), signed.csrf)
        request.state.form = form
        return await handler(request, signed)

    return page(functools.wraps(handler)(checked))


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


def error_page(request: Request, signed: SignedIn | None, exc: AetherError) -> Response:
    context: dict[str, Any] = {"signed": signed, "status": exc.http_status, "error": exc.message}
    template = "fragments/error.html" if request.headers.get("hx-request") else "error.html"
    response = render(request, template, context, status_code=exc.http_status)
    if exc.http_status == 503:  # like every 503 of the API: when to try again
        response.headers.setdefault("Retry-After", str(RETRY_AFTER_SECS))
    return response

"""Browser sessions: the session cookie, the principal it stands for, and CSRF checks.

The cookie (``aether_session``; ``__Host-aether_session`` over HTTPS) is HttpOnly,
SameSite=Strict, Secure over HTTPS, and holds only a random session id; the session acts as
the API token it was opened with (:mod:`aether.store.dashboard_sessions`). Every name starts
with ``aether`` so the app proxy, which strips the control plane's cookies by that prefix,
never hands them to an app. Forms that change anything carry the session's CSRF token (the
sign-in form, before any session, a token of its own in a second cookie), and a request
whose ``Origin`` is another site is refused outright.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aether.errors import Forbidden
from aether.server.auth import Principal
from aether.server.state import get_state
from aether.store import dashboard_sessions

SESSION_COOKIE = "aether_session"
SIGNIN_COOKIE = "aether_signin"  # the sign-in form's CSRF token, before a session exists
SIGNIN_COOKIE_SECS = 3600


@dataclass(frozen=True)
class SignedIn:
    """A browser's live session: who it acts as and the CSRF token its forms carry."""

    who: Principal
    email: str
    csrf: str

    def may_write(self, app_row: Any) -> bool:
        """The API's rule for changing an app (admin; deployer that owns it)."""
        role = self.who.role
        return role == "admin" or (role == "deployer" and app_row["owner"] == self.who.user_id)

    def may_create(self) -> bool:
        return self.who.role in ("admin", "deployer")


def is_https(request: Request) -> bool:
    """Served over HTTPS: TLS here, or a public URL behind a terminating proxy."""
    public_url = get_state(request).public_url or ""
    return request.url.scheme == "https" or public_url.startswith("https://")


def cookie_name(request: Request, base: str) -> str:
    # __Host-: the browser accepts it only Secure, for this host, with Path=/.
    return f"__Host-{base}" if is_https(request) else base


def set_cookie(response: Response, request: Request, base: str, value: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(request, base),
        value,
        max_age=max_age,
        path="/",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, base: str) -> None:
    response.delete_cookie(
        cookie_name(request, base),
        path="/",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def session_id(request: Request) -> str:
    return request.cookies.get(cookie_name(request, SESSION_COOKIE), "")


async def signed_in(request: Request) -> SignedIn | None:
    """The request's session, if it has a live one; its principal is then on the request
    for the API's role checks (:func:`aether.server.auth.require_app_access`)."""
    sid = session_id(request)
    if not sid:
        return None
    row = await dashboard_sessions.lookup(get_state(request).db, sid)
    if row is None or row["role"] == "puller":
        return None
    who = Principal(
        token_id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        role=row["role"],
        deployment_id=row["deployment_id"],
    )
    request.scope.setdefault("state", {})["principal"] = who
    return SignedIn(who=who, email=row["email"], csrf=row["csrf"])


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


def check_origin(request: Request) -> None:
    """A browser names the page a POST came from; another site's is refused."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or one that names no origin: the CSRF token decides
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own and origin != (get_state(request).public_url or "").rstrip("/"):
        raise Forbidden("this form was sent from another site; open the dashboard and retry")


def check_csrf(request: Request, sent: object, expected: str) -> None:
    """The form's (or ``X-CSRF-Token`` header's) token against the one the page was given."""
    check_origin(request)
    token = sent if isinstance(sent, str) and sent else request.headers.get("x-csrf-token", "")
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden(
            "the form's CSRF token is missing or out of date; reload the page and try again"
        )

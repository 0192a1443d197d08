"""What a browser can do on the dashboard: sign in (a pasted token or a one-time link),
sign out, roll back, scale and restart. Each change goes through the very functions the API's
routes call (:mod:`aether.server.releasing`), with the API's role checks."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from aether.errors import BadRequest, Forbidden
from aether.models import check_replicas, release_number
from aether.server import releasing
from aether.server.auth import require_app_access, require_role
from aether.server.routes.deployments import rollback_target, stored_artifact
from aether.server.state import get_state
from aether.server.ui import session
from aether.server.ui.guard import action, error_page, page, read_form
from aether.server.ui.session import SignedIn
from aether.server.ui.templating import render
from aether.store import apps as app_store
from aether.store import dashboard_sessions
from aether.store import tokens as token_store
from aether.store.clock import now_iso
from aether.store.database import Row


def _next(raw: object) -> str:
    """Where to go after signing in: a dashboard path of this site, never another site."""
    text = raw if isinstance(raw, str) else ""
    if text.startswith("/ui/") and not text.startswith("//") and "\\" not in text:
        return text
    return "/ui/apps"


async def signin_page(request: Request) -> Response:
    if await session.signed_in(request) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    return _signin_form(request, error=None, status_code=200)


def _signin_form(request: Request, *, error: str | None, status_code: int) -> Response:
    csrf = session.new_signin_token()
    link = request.query_params.get("link", "")[:128]
    context = {
        "signed": None,
        "csrf": csrf,
        "link": link,
        "next": _next(request.query_params.get("next")),
        "error": error,
    }
    response = render(request, "signin.html", context, status_code=status_code)
    session.set_cookie(response, request, session.SIGNIN_COOKIE, csrf, session.SIGNIN_COOKIE_SECS)
    return response


async def signin(request: Request) -> Response:
    form = await read_form(request)
    expected = request.cookies.get(session.cookie_name(request, session.SIGNIN_COOKIE), "")
    try:
        session.check_csrf(request, form.get("csrf"), expected)
    except Forbidden as exc:
        return error_page(request, None, exc)
    token_row = await _token_for(request, form.get("code"), form.get("token"))
    if token_row is None:
        return _signin_form(request, error=_failure(form.get("code")), status_code=401)
    state = get_state(request)
    sid, _ = await dashboard_sessions.open_session(
        state.db, token_row["id"], ttl_secs=state.settings.dashboard_session_secs
    )
    response = RedirectResponse(_next(form.get("next")), status_code=303)
    session.set_cookie(
        response, request, session.SESSION_COOKIE, sid, state.settings.dashboard_session_secs
    )
    session.clear_cookie(response, request, session.SIGNIN_COOKIE)
    return response


def _failure(code: object) -> str:
    if code:
        return "This sign-in link was used already or has expired; run `aether dashboard` again."
    return "That token is not valid (unknown, expired or revoked). Paste a live API token."


async def _token_for(request: Request, code: object, token: object) -> Row | None:
    """The live, non-pull token a pasted token or a one-time code stands for."""
    db = get_state(request).db
    if isinstance(code, str) and code:
        token_id = await dashboard_sessions.use_link(db, code)
        row = await token_store.get_token(db, token_id) if token_id else None
        if (
            row is None
            or row["revoked_at"]
            or (row["expires_at"] and row["expires_at"] <= now_iso())
        ):
            return None
    elif isinstance(token, str) and token.strip():
        row = await token_store.authenticate(db, token.strip())
    else:
        return None
    return row if row is not None and row["role"] != "puller" else None


@action
async def signout(request: Request, signed: SignedIn) -> Response:
    await dashboard_sessions.close_session(get_state(request).db, session.session_id(request))
    response = RedirectResponse("/ui/signin?signed_out=1", status_code=303)
    session.clear_cookie(response, request, session.SESSION_COOKIE)
    return response


async def _writable_app(request: Request) -> Row:
    require_role(request, "deployer")
    row = await app_store.require_app(get_state(request).db, request.path_params["app"])
    require_app_access(request, row, write=True)
    return row


@page
async def rollback_confirm(request: Request, signed: SignedIn) -> Response:
    app = await _writable_app(request)
    to = request.query_params.get("to", "")
    version = release_number(to)
    if version is None:
        raise BadRequest("choose a release to roll back to (for example v3)")
    target = await rollback_target(get_state(request), app, f"v{version}")
    context = {"signed": signed, "app": app, "target": target}
    return render(request, "rollback.html", context)


@action
async def rollback(request: Request, signed: SignedIn) -> Response:
    app = await _writable_app(request)
    state = get_state(request)
    target = await rollback_target(state, app, str(request.state.form.get("to", "")) or None)
    await stored_artifact(state, app, target["artifact_digest"], signed.who)
    outcome = await releasing.rollback(state, app, signed.who.user_id, target)
    return _to_rollout(app, outcome.deployment["id"])


@action
async def scale(request: Request, signed: SignedIn) -> Response:
    app = await _writable_app(request)
    raw = str(request.state.form.get("replicas", ""))
    if not raw.isdigit():
        raise BadRequest("replicas must be a whole number")
    replicas = check_replicas(int(raw), minimum=0)
    outcome = await releasing.scale(get_state(request), app, signed.who.user_id, replicas)
    return _to_rollout(app, outcome.deployment["id"])


@action
async def restart(request: Request, signed: SignedIn) -> Response:
    app = await _writable_app(request)
    outcome = await releasing.restart(get_state(request), app, signed.who.user_id)
    return _to_rollout(app, outcome.deployment["id"])


def _to_rollout(app: Row, deployment_id: str) -> Response:
    """Back to the app, following the new rollout's timeline."""
    target = f"/ui/apps/{quote(app['name'])}?deployment={quote(deployment_id)}#timeline"
    return RedirectResponse(target, status_code=303)

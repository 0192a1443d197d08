"""Login, token rotation, logout and whoami: the session file's life cycle.

``login`` verifies a token with ``GET /whoami`` before anything is written, so a typo never
replaces a working session; ``rotate`` asks the server for a new token (the old one dies at
once) and stores it; ``logout`` forgets the session and, with ``revoke``, deletes the token on
the server first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from aether.client.api import ApiClient
from aether.client.credentials import Credentials
from aether.clientsettings import ClientSettings
from aether.errors import ConfigError
from aether.userconfig import Session, forget_session, read_session, write_session


def whoami(credentials: Credentials) -> dict[str, Any]:
    """``GET /whoami`` with the API URL added."""
    with credentials.api_client() as api:
        identity = api.get("/whoami")
    return {**identity, "api_base": credentials.api_base}


def login(
    environ: Mapping[str, str], credentials: Credentials, *, username: str | None = None
) -> dict[str, Any]:
    """Verify the token, then store API URL, user and token in the session file (0600)."""
    identity = whoami(credentials)
    # The user the server reports wins over --username (kept for the original CLI's shape).
    user = identity.get("name") or username
    path = write_session(
        environ, Session(api_base=credentials.api_base, token=credentials.token, user=user)
    )
    return {**identity, "user": user, "session_file": str(path), "token_source": credentials.source}


def rotate(environ: Mapping[str, str], credentials: Credentials) -> dict[str, Any]:
    """``POST /tokens/rotate``, verify the new token, and store it."""
    with credentials.api_client() as api:
        rotated = api.post("/tokens/rotate")
    new_token = rotated.get("token")
    if not isinstance(new_token, str) or not new_token:
        raise ConfigError("the server did not return a new token; the old one may still work")
    fresh = dataclasses.replace(credentials, token=new_token, source="rotate")
    result = login(environ, fresh)
    result["expires_at"] = rotated.get("expires_at")
    result["token_id"] = rotated.get("token_id", result.get("token_id"))
    return result


def logout(environ: Mapping[str, str], *, revoke: bool) -> dict[str, Any]:
    """Forget the stored session; with ``revoke``, delete its token on the server first."""
    session = read_session(environ)
    revoked_id = None
    if revoke:
        if session is None:
            raise ConfigError("not logged in: there is no stored token to revoke")
        insecure_ok = ClientSettings.from_env(environ).allow_insecure_http
        with ApiClient(session.api_base, session.token, allow_insecure_http=insecure_ok) as api:
            token_id = api.get("/whoami").get("token_id")
            if not token_id:
                raise ConfigError("the server did not say which token this is; nothing revoked")
            api.delete(f"/tokens/{token_id}")
        revoked_id = token_id
    removed = forget_session(environ)
    return {
        "logged_out": removed,
        "revoked_token_id": revoked_id,
        "api_base": session.api_base if session else None,
    }

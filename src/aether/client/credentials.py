"""Where the API URL and the bearer token come from.

Token order: ``--token`` > ``AETHER_TOKEN`` > the session file > a hidden prompt, and the
prompt only when stdin is a terminal; otherwise a ConfigError says which flag or variable to
use. API URL order: ``--api`` > ``AETHER_API_BASE`` > the session file > ``config.toml``.
The prompt is injected by the CLI so this module stays free of terminal code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aether.clientsettings import ClientSettings
from aether.errors import ConfigError
from aether.userconfig import Session, read_session

if TYPE_CHECKING:
    from aether.client.api import ApiClient

DEFAULT_API_BASE = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Credentials:
    """A control plane and the token to use with it; ``source`` says where the token came from."""

    api_base: str
    token: str
    source: str  # --token | AETHER_TOKEN | session | prompt
    allow_insecure_http: bool = False  # ClientSettings.allow_insecure_http

    def api_client(self) -> ApiClient:
        """An API client for these credentials (which refuses clear-text tokens off-host)."""
        from aether.client.api import ApiClient

        return ApiClient(self.api_base, self.token, allow_insecure_http=self.allow_insecure_http)


Prompt = Callable[[str], str]


def resolve_api_base(flag: str | None, settings: ClientSettings, *, fallback: str | None) -> str:
    """``--api`` > AETHER_API_BASE/session/config (settings); ``fallback`` when none is set."""
    value = flag or settings.api_base or fallback
    if not value:
        raise ConfigError(
            "no control plane configured: run `aether login --api URL` or set AETHER_API_BASE"
        )
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"API URL {value!r} must start with http:// or https://")
    return value.rstrip("/")


def resolve_token(
    flag: str | None,
    environ: Mapping[str, str],
    *,
    session: Session | None,
    interactive: bool,
    prompt: Prompt | None,
) -> tuple[str, str]:
    """The token and its source, in the documented order."""
    if flag:
        return flag, "--token"
    if environ.get("AETHER_TOKEN"):
        return environ["AETHER_TOKEN"], "AETHER_TOKEN"
    if session is not None:
        return session.token, "session"
    if interactive and prompt is not None:
        token = prompt("API token").strip()
        if token:
            return token, "prompt"
    raise ConfigError(
        "no API token: pass --token TOKEN or set AETHER_TOKEN "
        "(stdin is not a terminal, so there is no prompt)"
        if not interactive
        else "no API token: pass --token TOKEN, set AETHER_TOKEN, or run `aether login`"
    )


def for_command(
    environ: Mapping[str, str],
    *,
    token: str | None = None,
    interactive: bool = False,
    prompt: Prompt | None = None,
) -> Credentials:
    """Credentials for a command that needs a logged-in client (deploy, list, logs, …)."""
    settings = ClientSettings.from_env(environ)
    session = read_session(environ)
    api_base = resolve_api_base(None, settings, fallback=None)
    value, source = resolve_token(
        token, environ, session=session, interactive=interactive, prompt=prompt
    )
    return Credentials(api_base, value, source, settings.allow_insecure_http)


def for_login(
    environ: Mapping[str, str],
    *,
    api: str | None,
    token: str | None,
    interactive: bool,
    prompt: Prompt | None,
) -> Credentials:
    """Credentials to verify and store: never the session's old token."""
    settings = ClientSettings.from_env(environ)
    api_base = resolve_api_base(api, settings, fallback=DEFAULT_API_BASE)
    value, source = resolve_token(
        token, environ, session=None, interactive=interactive, prompt=prompt
    )
    return Credentials(api_base, value, source, settings.allow_insecure_http)

"""The CLI's settings (:class:`ClientSettings`) and the boolean rule every component's
settings share, apart from :mod:`aether.settings`.

Why apart: ``aether deploy`` needs only these, and building the server's, worker's and
Kubernetes settings classes cost the client's start-up about 7 ms (docs/benchmarks.md).
:mod:`aether.settings` re-exports both names, so either import works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aether.errors import ConfigError
from aether.userconfig import load_config, read_session

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false or 1/0)")


@dataclass(frozen=True, eq=False, repr=False)
class ClientSettings:
    """What the CLI needs to talk to a control plane."""

    api_base: str | None  # AETHER_API_BASE > session file > config.toml api_base
    token: str | None  # AETHER_TOKEN > session file
    default_namespace: str  # AETHER_DEFAULT_NAMESPACE > config.toml > "aether"
    default_app: str | None  # config.toml default_app
    signing_key: str | None  # AETHER_SIGNING_KEY: 64 hex chars (Ed25519 seed) or a PEM path
    # AETHER_ALLOW_INSECURE_HTTP (or --allow-insecure-http): send tokens over plain http://
    # to hosts other than this one
    allow_insecure_http: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ClientSettings:
        config = load_config(environ)
        session = read_session(environ)
        return cls(
            api_base=(
                environ.get("AETHER_API_BASE")
                or (session.api_base if session else None)
                or config.get("api_base")
            ),
            token=environ.get("AETHER_TOKEN") or (session.token if session else None),
            default_namespace=(
                environ.get("AETHER_DEFAULT_NAMESPACE")
                or config.get("default_namespace")
                or "aether"
            ),
            default_app=config.get("default_app"),
            signing_key=environ.get("AETHER_SIGNING_KEY") or None,
            allow_insecure_http=env_bool(environ, "AETHER_ALLOW_INSECURE_HTTP", False),
        )

"""Which host names belong to apps and which to the API: the apps domain.

An app answers at ``<app>.<apps domain>`` (``AETHER_APPS_DOMAIN``). Without the setting the
apps domain is ``localhost`` when the API itself is on a loopback name (the embedded default)
and the API's own host otherwise (``<app>.aether.example.com``), which works but lets an app
set cookies for its parent domain: the server warns about that at start. The apps domain can
never be the API's host, a request whose Host is the API's host always reaches the API, and an
app whose name would make its host the API's (or is reserved) is refused at creation.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from aether.errors import ConfigError, Conflict

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::1"})
_HOST = re.compile(r"^([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)\.(.+)$")
# Names an operator expects to mean the control plane, never an app.
RESERVED_APP_NAMES = frozenset({"aether", "api", "admin", "dashboard", "www"})


def _is_local(host: str) -> bool:
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def _strip_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal, [::1]:8080
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True)
class Hosts:
    """The API's host and the apps domain, as lowercase names without ports."""

    api_host: str
    apps_domain: str

    @classmethod
    def from_settings(cls, public_url: str, apps_domain: str | None) -> Hosts:
        api_host = (urlsplit(public_url).hostname or "localhost").lower()
        domain = (apps_domain or "").strip().lower().strip(".")
        if not domain:
            domain = "localhost" if _is_local(api_host) else api_host
        if domain == api_host and apps_domain:
            raise ConfigError(
                f"AETHER_APPS_DOMAIN={apps_domain} is the API's own host; apps need a domain"
                " of their own (e.g. apps.example.net beside api.example.com)"
            )
        return cls(api_host=api_host, apps_domain=domain)

    def app_from_host(self, host: str) -> str | None:
        """``hello.localhost:8080`` → ``hello`` when ``localhost`` is the apps domain; None
        for the API's own host and any other name."""
        name = _strip_port(host)
        if name == self.api_host:
            return None
        match = _HOST.match(name)
        if match is None or match[2] != self.apps_domain:
            return None
        return match[1]

    def check_new_app_name(self, name: str) -> None:
        """Refuse a name that is reserved or whose host would be the API's own."""
        if name in RESERVED_APP_NAMES:
            raise Conflict(f"app name {name!r} is reserved for the control plane; choose another")
        if f"{name}.{self.apps_domain}" == self.api_host:
            raise Conflict(
                f"app name {name!r} would answer at the API's own host ({self.api_host});"
                " choose another"
            )

    def warnings(self) -> list[str]:
        """Why this apps domain lets apps reach the API's cookies, if it does."""
        api, apps = self.api_host, self.apps_domain
        if _is_local(api) or _is_ip(api):
            return []
        if api == apps or api.endswith("." + apps) or apps.endswith("." + api):
            shared = "the API's host" if api == apps else "a domain the API's host shares"
        elif _registrable(api) == _registrable(apps):
            shared = f"the API's registrable domain ({_registrable(api)})"
        else:
            return []
        return [
            f"apps answer under {shared}: an app can set cookies the API's host receives;"
            f" set AETHER_APPS_DOMAIN to a domain of its own (as Heroku keeps apps on"
            f" herokuapp.com)"
        ]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _registrable(host: str) -> str:
    """The last two labels: the registrable domain for the common one-label suffixes (a
    public-suffix list would know ``co.uk``; the warning errs towards speaking up)."""
    return ".".join(host.split(".")[-2:])

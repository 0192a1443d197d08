"""What of a client's request headers the router forwards to an app (HTTP and WebSocket),
and to the API behind it.

The control plane's own credentials never reach an app: ``Authorization`` and
``Proxy-Authorization`` are dropped, and so are the cookies whose names start with ``aether``
(the dashboard's session and sign-in cookies, ``__Host-``/``__Secure-`` prefixed too); the
app's own cookies pass untouched. ``X-Forwarded-For``/``-Proto``/``-Host`` are set by the
proxy from the connection it accepted; only when that connection comes from a trusted proxy
(``AETHER_TRUSTED_PROXIES``) is the client's ``X-Forwarded-For`` kept and extended, and its
``-Proto``/``-Host`` kept, since anyone else could write anything there. A request for the
API keeps its credentials and cookies; its ``X-Forwarded-For`` is built the same way, so the
API reads the client's address as its last entry (:mod:`aether.server.launch`).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from aether.errors import BadRequest

Header = tuple[bytes, bytes]
_CREDENTIALS = {b"authorization", b"proxy-authorization"}
_FORWARDED = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"}
_OWN_COOKIE_PREFIXES = ("aether", "__host-aether", "__secure-aether")
# Headers about one connection, never passed on (RFC 9110 7.6.1), and ``host``, which the
# proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)


def check_framing(headers: Iterable[Header]) -> None:
    """A request announcing both ``Transfer-Encoding`` and ``Content-Length`` is how request
    smuggling starts (two parsers may split it differently): refused, never forwarded."""
    names = {name.lower() for name, _ in headers}
    if b"transfer-encoding" in names and b"content-length" in names:
        raise BadRequest("a request may not carry both Transfer-Encoding and Content-Length")


def forwarded_headers(
    headers: Iterable[Header],
    *,
    drop: frozenset[bytes] | set[bytes],
    client: str,
    scheme: str,
    host: str,
    trusted_proxies: tuple[str, ...],
    to_api: bool = False,
) -> list[Header]:
    """The headers to send upstream: ``drop`` (hop-by-hop, handshake), credentials and the
    control plane's cookies removed (kept when the request is ``to_api``, the control
    plane's own), ``X-Forwarded-*`` set (or extended when trusted)."""
    trusted = _is_trusted(client, trusted_proxies)
    kept: list[Header] = []
    earlier: dict[bytes, bytes] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in drop or (lower in _CREDENTIALS and not to_api):
            continue
        if lower in _FORWARDED:
            if trusted and lower not in earlier:
                earlier[lower] = value
            continue
        if lower == b"cookie" and not to_api:
            value = _without_own_cookies(value)
            if not value:
                continue
        kept.append((name, value))
    chain = earlier.get(b"x-forwarded-for")
    address = client.encode("latin-1")
    kept += [
        (b"x-forwarded-for", chain + b", " + address if chain else address),
        (b"x-forwarded-proto", earlier.get(b"x-forwarded-proto") or scheme.encode("latin-1")),
        (b"x-forwarded-host", earlier.get(b"x-forwarded-host") or host.encode("latin-1")),
    ]
    return kept


def _without_own_cookies(value: bytes) -> bytes:
    pairs = [pair.strip() for pair in value.split(b";")]
    kept = [
        pair
        for pair in pairs
        if pair
        and not pair.partition(b"=")[0]
        .strip()
        .decode("latin-1")
        .lower()
        .startswith(_OWN_COOKIE_PREFIXES)
    ]
    return b"; ".join(kept)


def _is_trusted(client: str, trusted_proxies: tuple[str, ...]) -> bool:
    if not trusted_proxies or not client:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in _networks(trusted_proxies))


@functools.lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)

"""The address other hosts reach a local-runtime worker's apps on.

``AETHER_WORKER_ADVERTISE_ADDR`` when set; otherwise the source address this host uses on its
default route (what the kernel picks to reach a public address: a UDP ``connect`` sends no
packet). A host with no route at all advertises ``127.0.0.1``: only a control plane on the
same host can then reach its apps, and the worker says so at start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

LOOPBACK = "127.0.0.1"
# Documentation addresses (RFC 5737, RFC 3849): routed like any other, never contacted.
_PROBES = (("192.0.2.1", socket.AF_INET), ("2001:db8::1", socket.AF_INET6))


def default_route_addr() -> str | None:
    """This host's address on its default route, or None without one."""
    for probe, family in _PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                address = str(sock.getsockname()[0])
        except OSError:
            continue
        if not ipaddress.ip_address(address).is_unspecified:
            return address
    return None


def advertised(configured: str | None) -> str:
    return configured or default_route_addr() or LOOPBACK


def is_own(address: str) -> bool:
    """Whether ``address`` belongs to this host (not one that NAT or a proxy forwards here,
    which this host may not reach itself)."""
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


async def answers(address: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``address:port``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def endpoint(address: str, port: int) -> str:
    """``http://ADDRESS:PORT`` (an IPv6 address in brackets)."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"

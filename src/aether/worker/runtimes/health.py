"""Is a process answering HTTP on its port? One GET through :mod:`aether.upstream`.

Without a health path, any HTTP answer counts (an app may 404 on ``/``); with one, the answer
must be 2xx or 3xx. The request is the proxy's kind of HTTP/1.1 (h11), so an app the health
check passes is one the proxy can talk to.
"""

from __future__ import annotations

import socket

from aether import upstream

_HEADERS = (("user-agent", "aether-health"),)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def http_status(port: int, path: str = "/", *, timeout: float = 2.0) -> int | None:
    """The status code of ``GET path`` on 127.0.0.1:port, or None when nothing answers."""
    return await upstream.get_status("127.0.0.1", port, path, timeout=timeout, headers=_HEADERS)


def is_healthy(status: int | None, health_path: str | None) -> bool:
    if status is None:
        return False
    if health_path:
        return 200 <= status < 400
    return True

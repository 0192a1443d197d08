"""Is a process answering HTTP on its port? A minimal HTTP/1.0 GET over asyncio streams.

Without a health path, any HTTP answer counts (an app may 404 on ``/``); with one, the answer
must be 2xx or 3xx. Used by the worker's rollouts and by ``aether deploy --check``; kept
dependency-free (neither may import an HTTP client).
"""

from __future__ import annotations

import asyncio
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def http_status(port: int, path: str = "/", *, timeout: float = 2.0) -> int | None:
    """The status code of ``GET path`` on 127.0.0.1:port, or None when nothing answers."""
    try:
        return await asyncio.wait_for(_get_status(port, path), timeout)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return None


async def _get_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = (
            f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: aether-health\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.decode("latin-1").split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP answer: {status_line!r}")
        return int(parts[1])
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def is_healthy(status: int | None, health_path: str | None) -> bool:
    if status is None:
        return False
    if health_path:
        return 200 <= status < 400
    return True

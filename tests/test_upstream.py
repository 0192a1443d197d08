"""HTTP/1.1 to an app's port: the health check's status codes against real loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from aether import upstream
from aether.worker.runtimes.health import free_port, http_status, is_healthy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def answering(raw: bytes, seen: list[bytes] | None = None) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if seen is not None:
                seen.append(head)
            writer.write(raw)
            await writer.drain()
        finally:
            writer.close()

    return handle


async def test_the_status_of_a_get(serve: Callable[[Handler], Awaitable[int]]) -> None:
    seen: list[bytes] = []
    port = await serve(answering(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", seen))
    assert await http_status(port, "/healthz") == 404
    assert seen[0].startswith(b"GET /healthz HTTP/1.1\r\n")
    assert b"user-agent: aether-health" in seen[0].lower()


async def test_an_interim_answer_is_not_the_status(serve) -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\n\r\n"
    assert await http_status(await serve(answering(raw)), "/") == 204


@pytest.mark.parametrize(
    "raw", [b"SSH-2.0-OpenSSH_9.2\r\n", b"", b"HTTP/1.1 2xx Broken\r\n\r\n"], ids=str
)
async def test_what_is_not_an_http_answer_is_none(serve, raw: bytes) -> None:
    assert await http_status(await serve(answering(raw)), "/") is None


async def test_a_silent_app_is_none_within_the_timeout(serve) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client gives up
        writer.close()

    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await http_status(await serve(silent), "/", timeout=0.3) is None
    assert loop.time() - started < 5  # bounded by the timeout, not by the app


async def test_a_closed_port_is_none() -> None:
    assert await http_status(free_port(), "/") is None
    assert await upstream.connect("127.0.0.1", free_port()) is None


def test_what_counts_as_healthy() -> None:
    assert is_healthy(404, None) and not is_healthy(None, None)
    assert is_healthy(302, "/healthz") and not is_healthy(404, "/healthz")
    assert not is_healthy(500, "/healthz")

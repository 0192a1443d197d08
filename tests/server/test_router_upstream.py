"""The router's connection to an upstream when a write fails: an answer the upstream sent
before closing (an early error answer to an upload) is passed on, not lost with the write."""

from __future__ import annotations

import asyncio
import socket

from aether.server.router.upstream import UNIX, Upstream, UpstreamPool

ANSWER = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\ndisk full"


class Heard:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.lost = asyncio.Event()

    def upstream_data(self, data: bytes) -> None:
        self.data.append(data)

    def upstream_lost(self) -> None:
        self.lost.set()

    def upstream_paused(self, paused: bool) -> None:
        pass


async def test_an_answer_left_unread_when_a_write_fails_is_passed_on() -> None:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, upstream = await loop.create_unix_connection(
        lambda: Upstream(UpstreamPool(), ("api.sock", UNIX)), sock=ours
    )
    heard = Heard()
    upstream.receiver = heard
    # The answer arrives, and the other side closes, before the router reads: its next
    # write of the request body fails first.
    transport.pause_reading()
    theirs.sendall(ANSWER)
    theirs.close()
    upstream.write(b"more of the body" * 4096)
    await asyncio.wait_for(heard.lost.wait(), 10)
    assert b"".join(heard.data) == ANSWER
    assert upstream.closed

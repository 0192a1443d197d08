"""The app router (:mod:`aether.server.router`) on a real loopback port, beside an API
harness: it runs on the harness's event loop and shares its state, as in ``aether serve``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx

from aether.server.router.server import UPSTREAM_IDLE_SECS, Router


@contextlib.contextmanager
def running_router(
    api: Any, *, idle_secs: float = UPSTREAM_IDLE_SECS, front_of: str | None = None
) -> Iterator[Router]:
    """A router for ``api``'s apps; in front of the API listening at ``front_of`` when given."""
    listener = socket.create_server(("127.0.0.1", 0))
    router = Router(api.state, idle_secs=idle_secs, api=front_of)
    router.port = listener.getsockname()[1]  # type: ignore[attr-defined]
    api.client.portal.call(router.start, listener)
    try:
        yield router
    finally:
        api.client.portal.call(router.stop, 2.0)
        listener.close()


@contextlib.contextmanager
def router_client(
    api: Any, *, local_address: str | None = None, idle_secs: float = UPSTREAM_IDLE_SECS
) -> Iterator[httpx.Client]:
    """An HTTP client whose requests go to a router serving ``api``'s apps."""
    with running_router(api, idle_secs=idle_secs) as router:
        transport = httpx.HTTPTransport(local_address=local_address)
        base = f"http://127.0.0.1:{router.port}"  # type: ignore[attr-defined]
        with httpx.Client(base_url=base, transport=transport, timeout=30) as client:
            yield client

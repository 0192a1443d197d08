"""Process-local wake-ups for writes that someone in the same process is waiting for.

``aether serve`` runs the API and the worker in one process: when a handler creates a
deployment, the worker should start on it now, not at its next poll; when the worker records
an event, a client following the deployment should see it now. Store functions ``poke`` a
topic after their write; waiters ``subscribe`` before they read, so a write that lands
between their read and their wait still wakes them. Writers in other processes (a separate
``aether worker``, another replica) never poke: waiters keep a poll interval as their
fallback, and PostgreSQL's LISTEN/NOTIFY covers the worker there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

NEW_DEPLOYMENT = "deployments"
APPS = "apps"  # an app, or deployments of it, removed


def deployment_topic(deployment_id: str) -> str:
    """Events and status changes of one deployment."""
    return f"deployment:{deployment_id}"


class Subscription:
    """Set by the first poke of its topic after it was taken."""

    def __init__(self, event: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = event or asyncio.Event()

    def _fire(self) -> None:
        # A poke may come from another thread or event loop (tests run several).
        if self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        else:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """True when poked, False after ``timeout`` seconds without one."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


_subscribers: dict[str, set[Subscription]] = {}


@contextlib.contextmanager
def subscribe(topic: str, event: asyncio.Event | None = None) -> Iterator[Subscription]:
    """Wake-ups for ``topic`` while the block runs; take it before reading the state.
    With ``event``, every poke sets that event (a long-lived waiter that clears it itself)."""
    subscription = Subscription(event)
    _subscribers.setdefault(topic, set()).add(subscription)
    try:
        yield subscription
    finally:
        waiting = _subscribers.get(topic)
        if waiting is not None:
            waiting.discard(subscription)
            if not waiting:
                del _subscribers[topic]


_watchers: set[Callable[[str], None]] = set()


@contextlib.contextmanager
def watch(callback: Callable[[str], None]) -> Iterator[None]:
    """Call ``callback(topic)`` on every poke of any topic while the block runs, in the poking
    thread (a cache that drops what a write may have changed)."""
    _watchers.add(callback)
    try:
        yield
    finally:
        _watchers.discard(callback)


def poke(topic: str) -> None:
    """Wake everyone subscribed to ``topic`` (after the write they wait for is committed)."""
    for watcher in list(_watchers):
        watcher(topic)
    for subscription in list(_subscribers.get(topic, ())):
        subscription._fire()

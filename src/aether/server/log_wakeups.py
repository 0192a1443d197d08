"""Followers of an app's logs wake when a batch of its lines commits, not at their next poll.

On PostgreSQL every batch a worker ships notifies ``aether_log_lines`` with the app's id
(:func:`aether.store.logs.ship`, sent once its transaction commits). Each API process holds
one LISTEN connection for it and wakes the followers of that app; while that connection is
down (and always on SQLite, which has no notifications) followers poll instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Protocol

from aether.errors import AetherError
from aether.store import logs as log_store

log = logging.getLogger("aether.server")
RECONNECT_SECS = (0.5, 1.0, 2.0, 5.0)  # waits between attempts to listen again


class LineWakeups:
    """The events of the followers waiting for each app's next lines. Used on the server's
    event loop only."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self.heard = False  # notifications arrive: a follower need not poll

    @contextlib.contextmanager
    def waiting(self, app_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever lines of ``app_id`` are stored while the block runs; take it
        before reading, clear it before each read."""
        event = asyncio.Event()
        self._waiting.setdefault(app_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiting.get(app_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[app_id]

    def stored(self, app_id: str) -> None:
        for event in self._waiting.get(app_id, ()):
            event.set()

    def listening(self) -> None:
        """Notifications are heard from now on: wake everyone, they may have missed some."""
        self.heard = True
        for events in self._waiting.values():
            for event in events:
                event.set()


class ListeningState(Protocol):
    """The parts of ``server.state.ServerState`` the listener uses (the state module builds
    a :class:`LineWakeups`, so this module cannot import it back)."""

    db: Any
    line_wakeups: LineWakeups
    stopping: asyncio.Event


async def hear_stored_lines(state: ListeningState) -> None:
    """Keep ``state.line_wakeups`` fed from PostgreSQL's notifications; reconnect with backoff
    when the connection drops. Nothing to hear on SQLite."""
    wakeups = state.line_wakeups
    if state.db.dialect != "postgresql":
        return
    attempt = 0
    while not state.stopping.is_set():
        try:
            listen: Any = state.db.listen  # only PostgreSQL's database has it
            async for app_id in listen(log_store.NOTIFY_CHANNEL, wakeups.listening):
                attempt = 0
                wakeups.stored(app_id)
        except AetherError as exc:
            log.warning("log followers poll until notifications are heard again: %s", exc)
        finally:
            wakeups.heard = False
        delay = RECONNECT_SECS[min(attempt, len(RECONNECT_SECS) - 1)]
        attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopping.wait(), delay)

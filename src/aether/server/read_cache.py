"""Answers to the API's two busiest reads kept in memory until a write changes them.

``GET /apps/{app}/deployments`` (dashboards and ``aether list`` poll it) changes only when a
deployment of the app does; ``HEAD /artifacts/{digest}`` (every deploy asks it) stays 200 once
an artifact is stored, until the artifact is deleted. Answers are served from memory only
while this process hears PostgreSQL's change feed (:mod:`aether.store.change_feed`): every write,
from any process, drops what it touched once it commits. Writes made through this process
also drop everything through :mod:`aether.store.wakeups` before their response is sent, so a
client always reads its own writes; another process's write shows once its notification
arrives (normally within a millisecond). While the feed is down (and always on SQLite, which
has none) nothing is cached. ``AETHER_READ_CACHE_SECS`` bounds an entry's age regardless, and
0 turns caching off.

An answer read from the database is kept only if no change at all was heard while it was
read: the read may have seen the database before a write whose notification was handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aether.errors import AetherError
from aether.store import change_feed, wakeups
from aether.store.database import Database

log = logging.getLogger("aether.server")

Key = tuple[str | int | None, ...]  # ("page", app, limit, cursor) or ("stored", digest)
RECONNECT_SECS = (0.5, 1.0, 2.0, 5.0)  # waits between attempts to hear the feed again


def page_key(app_name: str, limit: int, cursor: str | None) -> Key:
    return ("page", app_name, limit, cursor)


def stored_key(digest: str, app_id: str) -> Key:
    """``HEAD /artifacts/{digest}?app=``'s 200: the app holds the stored digest."""
    return ("stored", digest, app_id)


@dataclass(frozen=True)
class _Entry:
    topic: str  # what the change feed names when it changes: an app id, artifact:<digest>
    body: bytes
    stored_at: float


class ReadCache:
    """Rendered answers by key, oldest dropped first beyond ``max_bytes``; thread-safe, as
    pokes may come from another thread."""

    ENTRY_OVERHEAD = 256  # bytes an entry costs beside its body (key, record, dict slot)

    def __init__(
        self,
        max_age: float,
        *,
        max_bytes: int = 32 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: dict[Key, _Entry] = {}
        self._bytes = 0
        self._generation = 0
        self._active = False
        self._lock = threading.Lock()
        self.off_because: str | None = None  # why it will never be active in this process

    @property
    def active(self) -> bool:
        """True while the change feed is heard, so entries can be trusted."""
        return self._active

    @property
    def generation(self) -> int:
        """Take this before reading the database; hand it to :meth:`put`."""
        return self._generation

    def get(self, key: Key) -> bytes | None:
        entry = self._entries.get(key) if self._active else None
        if entry is None:
            return None
        if self._clock() - entry.stored_at > self.max_age:
            with self._lock:
                if self._entries.get(key) is entry:
                    self._drop(key)
            return None
        return entry.body

    def put(self, key: Key, topic: str, body: bytes, generation: int) -> None:
        """Keep ``body`` unless a change was heard since ``generation`` was taken."""
        size = len(body) + self.ENTRY_OVERHEAD
        with self._lock:
            if not self._active or generation != self._generation or size > self.max_bytes:
                return
            if key in self._entries:
                self._drop(key)
            while self._bytes + size > self.max_bytes:
                self._drop(next(iter(self._entries)))  # the oldest
            self._entries[key] = _Entry(topic, body, self._clock())
            self._bytes += size

    def changed(self, topic: str | None = None) -> None:
        """Drop the entries of ``topic`` (everything when None)."""
        with self._lock:
            self._generation += 1
            if topic is None:
                self._clear()
                return
            for key in [key for key, entry in self._entries.items() if entry.topic == topic]:
                self._drop(key)

    def activate(self) -> None:
        """The feed is heard from now on: changes before this moment were not."""
        with self._lock:
            self._generation += 1
            self._clear()
            self._active = True

    def deactivate(self) -> None:
        with self._lock:
            self._active = False
            self._generation += 1
            self._clear()

    # Callers hold the lock.
    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.body) + self.ENTRY_OVERHEAD

    def _clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


async def follow_changes(
    cache: ReadCache,
    db: Database,
    stopping: asyncio.Event,
    also: Callable[[str], None] | None = None,
) -> None:
    """Keep ``cache`` active exactly while PostgreSQL's change feed is heard; reconnect with
    backoff when it drops. Local writes reach it through :func:`aether.store.wakeups.watch`.
    ``also`` hears every topic of the feed too (the router's endpoints)."""
    if db.dialect != "postgresql":
        cache.off_because = "SQLite has no change feed"
        return
    attempt = 0
    with wakeups.watch(lambda _topic: cache.changed()):
        while not stopping.is_set():
            try:
                if not await change_feed.feed_available(db):
                    cache.off_because = "the change triggers are missing"
                    log.warning("reads are not cached: run `aether migrate` to add the triggers")
                    return
                listen: Any = db.listen  # type: ignore[attr-defined]  # PostgreSQL's
                async for topic in listen(change_feed.CHANNEL, cache.activate):
                    attempt = 0
                    cache.changed(topic)
                    if also is not None:
                        also(topic)
            except AetherError as exc:
                log.warning("reads uncached until the change feed is back: %s", exc)
            finally:
                cache.deactivate()
            delay = RECONNECT_SECS[min(attempt, len(RECONNECT_SECS) - 1)]
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)

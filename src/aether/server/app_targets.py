"""Where the Host-header router sends an app's requests: the endpoints of its serving
instances, read from the store and kept for a moment, taken in turn (round-robin).

Keeping the answer spares the database a query per proxied request. A write this process
hears of (a cutover by the embedded worker, its instance records; on PostgreSQL any replica's
deployment changes, through the change feed) drops what is kept, and a request that cannot
reach any endpoint asks again at once (``fresh=True``), so a cutover or an instance that died
costs no failed request, only a look-up. What nobody said changed is asked again ``ttl``
seconds after it was read: once, in the background, while requests go on to what is kept for
up to another ``ttl`` (they used to wait for a query each, all of them at once, every second —
the app router's worst latencies under load). Requests for an app nothing is known of share one
query.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aether.errors import AetherError
from aether.store import rollouts
from aether.store.database import Database

TTL_SECS = 1.0
# Wake-up topics after which an app's endpoints may have moved (the change feed's are app ids).
CHANGE_PREFIXES = ("deployment:", "instances:")


def _is_app_id(topic: str) -> bool:
    try:
        uuid.UUID(topic)
    except ValueError:
        return False
    return True


@dataclass
class Target:
    """An app's endpoints now; empty when nothing of it runs."""

    endpoints: tuple[str, ...]
    expires: float
    stopped: bool = False  # scaled to 0
    # The next turn, in a list shared by the targets of the app while its endpoints stay
    turn: list[int] = field(default_factory=lambda: [0])

    def next_endpoint(self) -> str:
        """The endpoint whose turn is next, without taking the turn."""
        return self.endpoints[self.turn[0] % len(self.endpoints)]

    def in_turn(self) -> list[str]:
        """The endpoints, starting with the next one in turn; the turn is taken."""
        if len(self.endpoints) < 2:
            return list(self.endpoints)
        start = self.turn[0] % len(self.endpoints)
        self.turn[0] += 1
        return [*self.endpoints[start:], *self.endpoints[:start]]


class AppTargets:
    def __init__(self, db: Database, *, ttl: float = TTL_SECS) -> None:
        self.db = db
        self.ttl = ttl
        self._known: dict[str, Target] = {}
        self._observers: set[Callable[[str], None]] = set()
        self._asking: dict[str, asyncio.Future[Target | None]] = {}  # one query per app
        self._generation = 0  # a change since a query began: its answer is not kept
        self._refreshing: set[asyncio.Task[None]] = set()

    def changed(self, topic: str) -> None:
        """After a write: when a deployment or an app's instances changed (a wake-up topic,
        or an app id from PostgreSQL's change feed), look everything up afresh."""
        if topic.startswith(CHANGE_PREFIXES) or _is_app_id(topic):
            self._known.clear()
            self._asking.clear()
            self._generation += 1
            for observer in list(self._observers):
                observer(topic)

    @contextlib.contextmanager
    def observed(self, observer: Callable[[str], None]) -> Iterator[None]:
        """``observer(topic)`` hears every change that drops what is kept while the block
        runs (the app router's process keeps targets of its own)."""
        self._observers.add(observer)
        try:
            yield
        finally:
            self._observers.discard(observer)

    def cached(self, app_name: str) -> Target | None:
        """The app's target when one is kept: no database call. One past its time is still
        answered for another ``ttl`` while it is asked again in the background; an older one
        is not (an app asked for now and then gets what the store says now)."""
        known = self._known.get(app_name)
        if known is None:
            return None
        late = time.monotonic() - known.expires
        if late < 0:
            return known
        if late < self.ttl:
            self._refresh_later(app_name)
            return known
        return None

    async def lookup(self, app_name: str, *, fresh: bool = False) -> Target | None:
        """The app's target (None: no such app); AetherError when the store cannot answer.
        ``fresh``: asked of the store now (or by a query already under way)."""
        known = None if fresh else self.cached(app_name)
        if known is not None:
            return known
        asking = self._asking.get(app_name)
        if asking is None:
            asking = self._asking[app_name] = asyncio.ensure_future(self._ask(app_name))
        return await asyncio.shield(asking)

    def _refresh_later(self, app_name: str) -> None:
        if app_name in self._asking:
            return
        self._asking[app_name] = asking = asyncio.ensure_future(self._ask(app_name))
        task = asyncio.ensure_future(_quietly(asking))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _ask(self, app_name: str) -> Target | None:
        generation = self._generation
        try:
            serving = await rollouts.serving_endpoints(self.db, app_name)
        finally:
            if self._generation == generation:
                self._asking.pop(app_name, None)
        if self._generation != generation:  # changed meanwhile: answer, keep nothing
            return _target(serving, time.monotonic()) if serving is not None else None
        if serving is None:
            self._known.pop(app_name, None)
            return None
        if len(self._known) > 10_000:  # bounded: app names come from request headers
            self._known.clear()
        target = _target(serving, time.monotonic() + self.ttl)
        known = self._known.get(app_name)
        if known is not None and known.endpoints == target.endpoints:
            target.turn = known.turn
        self._known[app_name] = target
        return target


def _target(serving: dict[str, object], expires: float) -> Target:
    endpoints: Any = serving["endpoints"]
    return Target(tuple(endpoints), expires, bool(serving["stopped"]))


async def _quietly(asking: asyncio.Future[Target | None]) -> None:
    """A refresh nobody waits for: a store that cannot answer now is asked again later."""
    with contextlib.suppress(AetherError):
        await asking

"""Where the Host-header router sends an app's requests: the endpoints of its serving
instances, read from the store and kept for a moment, taken in turn (round-robin).

Keeping the answer for ``ttl`` seconds spares the database a query per proxied request. A
write this process hears of (a cutover by the embedded worker, its instance records; on
PostgreSQL any replica's deployment changes, through the change feed) drops what is kept, and
a request that cannot reach any endpoint asks again at once (``fresh=True``), so a cutover or
an instance that died costs no failed request, only a look-up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

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

    def changed(self, topic: str) -> None:
        """After a write: when a deployment or an app's instances changed (a wake-up topic,
        or an app id from PostgreSQL's change feed), look everything up afresh."""
        if topic.startswith(CHANGE_PREFIXES) or _is_app_id(topic):
            self._known.clear()

    def cached(self, app_name: str) -> Target | None:
        """The app's target when one is kept and still fresh: no database call."""
        known = self._known.get(app_name)
        if known is not None and known.expires > time.monotonic():
            return known
        return None

    async def lookup(self, app_name: str, *, fresh: bool = False) -> Target | None:
        """The app's target (None: no such app); AetherError when the store cannot answer."""
        now = time.monotonic()
        known = self._known.get(app_name)
        if known is not None and not fresh and known.expires > now:
            return known
        serving = await rollouts.serving_endpoints(self.db, app_name)
        if serving is None:
            self._known.pop(app_name, None)
            return None
        if len(self._known) > 10_000:  # bounded: app names come from request headers
            self._known.clear()
        target = Target(tuple(serving["endpoints"]), now + self.ttl, serving["stopped"])
        if known is not None and known.endpoints == target.endpoints:
            target.turn = known.turn
        self._known[app_name] = target
        return target

"""Where the Host-header router sends an app's requests: the endpoints of its serving
instances, read from the store and kept for a moment, taken in turn (round-robin).

Keeping the answer for ``ttl`` seconds spares the database a query per proxied request; a
request that cannot reach any endpoint asks again at once (``fresh=True``), so a cutover or an
instance that died costs no failed request, only a look-up.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from aether.store import rollouts
from aether.store.database import Database

TTL_SECS = 1.0


@dataclass
class Target:
    """An app's endpoints now; empty when nothing of it runs."""

    endpoints: tuple[str, ...]
    expires: float
    stopped: bool = False  # scaled to 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def in_turn(self) -> list[str]:
        """The endpoints, starting with the next one in turn."""
        if len(self.endpoints) < 2:
            return list(self.endpoints)
        start = next(self._turn) % len(self.endpoints)
        return [*self.endpoints[start:], *self.endpoints[:start]]


class AppTargets:
    def __init__(self, db: Database, *, ttl: float = TTL_SECS) -> None:
        self.db = db
        self.ttl = ttl
        self._known: dict[str, Target] = {}

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
            target._turn = known._turn
        self._known[app_name] = target
        return target

"""Where the routers send an app's requests (:class:`AppTargets`), over both metadata
backends: requests never queue up behind one query each, and a change drops what is kept."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from seeding import insert_running_deployment

from aether.server import app_targets
from aether.server.app_targets import AppTargets
from aether.store import rollouts
from aether.store.database import Database
from plugins.polling import eventually


async def _app_at(db: Database, name: str, endpoint: str) -> None:
    await insert_running_deployment(db, name, endpoint)


class Queries:
    """Counts the store's look-ups (the real ones run); ``gate`` holds them while clear."""

    def __init__(self) -> None:
        self.count = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self._real = rollouts.serving_endpoints

    async def __call__(self, db: Any, app_name: str) -> Any:
        self.count += 1
        await self.gate.wait()
        return await self._real(db, app_name)


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> Queries:
    counting = Queries()
    monkeypatch.setattr(app_targets.rollouts, "serving_endpoints", counting)
    return counting


async def test_requests_for_an_app_share_one_query(database: Database, queries: Queries) -> None:
    await _app_at(database, "hello", "http://127.0.0.1:1001")
    targets = AppTargets(database)
    found = await asyncio.gather(*(targets.lookup("hello") for _ in range(20)))
    assert queries.count == 1
    assert {t.endpoints for t in found if t is not None} == {("http://127.0.0.1:1001",)}


async def test_a_target_past_its_time_answers_while_one_query_refreshes_it(
    database: Database, queries: Queries
) -> None:
    await _app_at(database, "hello", "http://127.0.0.1:1001")
    targets = AppTargets(database, ttl=0.5)
    first = await targets.lookup("hello")
    assert first is not None
    # past its time, not by a ttl yet
    await eventually(lambda: time.monotonic() > first.expires, interval=0.01)
    await _app_at(database, "hello", "http://127.0.0.1:1002")  # nobody told this process
    queries.gate.clear()
    for _ in range(10):  # no request waits for the store, and only one query is made
        kept = targets.cached("hello") or await targets.lookup("hello")
        assert kept is not None and kept.endpoints == ("http://127.0.0.1:1001",)
        await asyncio.sleep(0)  # the refresh runs meanwhile
    assert queries.count == 2
    queries.gate.set()

    def moved() -> bool:
        kept = targets.cached("hello")
        return kept is not None and kept.endpoints == ("http://127.0.0.1:1002",)

    await eventually(moved)


async def test_a_change_drops_what_is_kept_and_what_was_being_asked(
    database: Database, queries: Queries
) -> None:
    await _app_at(database, "hello", "http://127.0.0.1:1001")
    targets = AppTargets(database)
    await targets.lookup("hello")
    queries.gate.clear()
    before = asyncio.ensure_future(targets.lookup("hello", fresh=True))  # under way
    await eventually(lambda: queries.count == 2)
    await _app_at(database, "hello", "http://127.0.0.1:1002")
    targets.changed("deployment:" + str(uuid.uuid4()))
    assert targets.cached("hello") is None  # nothing kept is answered after a change
    after = asyncio.ensure_future(targets.lookup("hello"))  # a query of its own
    queries.gate.set()
    await before
    found = await after
    assert found is not None and found.endpoints == ("http://127.0.0.1:1002",)
    kept = targets.cached("hello")
    assert kept is not None and kept.endpoints == ("http://127.0.0.1:1002",)


async def test_a_target_long_past_its_time_is_asked_again_before_answering(
    database: Database, queries: Queries
) -> None:
    await _app_at(database, "hello", "http://127.0.0.1:1001")
    targets = AppTargets(database, ttl=0.05)
    first = await targets.lookup("hello")
    assert first is not None
    await _app_at(database, "hello", "http://127.0.0.1:1002")  # nobody told this process
    await eventually(lambda: time.monotonic() > first.expires + targets.ttl)
    assert targets.cached("hello") is None  # an app asked for now and then: no old answer
    found = await targets.lookup("hello")
    assert found is not None and found.endpoints == ("http://127.0.0.1:1002",)

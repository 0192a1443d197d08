"""Deployment pages and stored-artifact answers served from memory: fresh after every write,
from this process or another.

The cache's bookkeeping is tested on its own; the API tests run on PostgreSQL, the only
backend with a change feed (SQLite never caches, checked last).
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from seeding import insert_artifact

from aether.server.read_cache import ReadCache
from plugins.polling import wait_for

LISTING = "/apps/shop/deployments"
LISTENER = "query LIKE 'LISTEN \"aether_app_changes\"%'"
postgres_only = pytest.mark.parametrize("backend", ["postgres"])


def until(check: Callable[[], bool], *, what: str, timeout: float = 10.0) -> None:
    wait_for(check, timeout=timeout, what=what, interval=0.01)


# --- the cache on its own ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def active_cache(**kwargs) -> ReadCache:
    cache = ReadCache(60.0, **kwargs)
    cache.activate()
    return cache


def test_nothing_is_kept_or_served_until_the_feed_is_heard() -> None:
    cache = ReadCache(60.0)
    cache.put(("shop", 20, None), "app-1", b"[]", cache.generation)
    assert cache.get(("shop", 20, None)) is None
    cache.activate()
    cache.put(("shop", 20, None), "app-1", b"[]", cache.generation)
    assert cache.get(("shop", 20, None)) == b"[]"
    cache.deactivate()  # the feed dropped: what it may have missed is unknown
    assert cache.get(("shop", 20, None)) is None


def test_a_change_drops_only_that_apps_pages() -> None:
    cache = active_cache()
    cache.put(("shop", 20, None), "app-1", b"shop", cache.generation)
    cache.put(("shop", 5, "c"), "app-1", b"shop page 2", cache.generation)
    cache.put(("blog", 20, None), "app-2", b"blog", cache.generation)
    cache.changed("app-1")
    assert cache.get(("shop", 20, None)) is None and cache.get(("shop", 5, "c")) is None
    assert cache.get(("blog", 20, None)) == b"blog"
    cache.changed()  # a local write: everything goes
    assert cache.get(("blog", 20, None)) is None


def test_a_page_read_while_a_change_was_heard_is_not_kept() -> None:
    cache = active_cache()
    generation = cache.generation  # the read starts
    cache.changed("app-2")  # some write commits while it runs: the read may predate it
    cache.put(("shop", 20, None), "app-1", b"maybe stale", generation)
    assert cache.get(("shop", 20, None)) is None


def test_entries_expire_after_the_max_age() -> None:
    clock = FakeClock()
    cache = active_cache(clock=clock)
    cache.put(("shop", 20, None), "app-1", b"page", cache.generation)
    clock.now += 60.0
    assert cache.get(("shop", 20, None)) == b"page"
    clock.now += 0.5
    assert cache.get(("shop", 20, None)) is None


def test_the_oldest_entries_make_room_and_nothing_bigger_than_the_budget_is_kept() -> None:
    cache = active_cache(max_bytes=2 * (ReadCache.ENTRY_OVERHEAD + 100))
    for name in ("a", "b", "c"):
        cache.put((name, 20, None), name, name.encode() * 100, cache.generation)
    assert cache.get(("a", 20, None)) is None
    assert cache.get(("b", 20, None)) == b"b" * 100 and cache.get(("c", 20, None)) == b"c" * 100
    cache.put(("b", 20, None), "b", b"B" * 100, cache.generation)  # replaced, not added
    assert cache.get(("c", 20, None)) == b"c" * 100
    cache.put(("huge", 20, None), "h", b"h" * 1000, cache.generation)
    assert cache.get(("huge", 20, None)) is None
    assert cache.get(("b", 20, None)) == b"B" * 100


# --- through the API, on PostgreSQL ----------------------------------------------------------


@pytest.fixture
def shop(api):
    """The deployer's app with one deployment, once the server hears the change feed."""
    until(lambda: api.state.read_cache.active, what="the change feed")
    app = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    artifact = api.run(insert_artifact, app["id"])
    deployment = deploy(api, artifact["digest"])
    return app, deployment


def deploy(api, digest: str) -> dict:
    response = api.post(
        "/deployments", json={"app_name": "shop", "artifact_digest": digest}, as_="deployer"
    )
    assert response.status_code == 201, response.text
    return response.json()


def listed_shop(api) -> None:
    """The deployer's app with one deployment, listed once (so a cache would hold it)."""
    app = api.post("/apps", json={"name": "shop"}, as_="deployer").json()
    deploy(api, api.run(insert_artifact, app["id"])["digest"])
    assert statuses(api) == ["pending"]


def head(api, digest: str) -> int:
    """``HEAD /artifacts/{digest}?app=shop``: does the app hold the stored digest?"""
    return api.head(f"/artifacts/{digest}?app=shop", as_="reader").status_code


def statuses(api) -> list[str]:
    response = api.get(LISTING, as_="reader")
    assert response.status_code == 200, response.text
    return [item["status"] for item in response.json()["deployments"]]


def outside_write(api, sql: str, params: tuple | None = None, *, quietly: bool = False) -> None:
    """A write by another process, on its own connection (``quietly``: firing no trigger)."""
    with psycopg.connect(api.state.db.url, autocommit=True) as conn:
        if quietly:
            conn.execute("SET session_replication_role = replica")
        conn.execute(sql, params)


@pytest.mark.postgres
@postgres_only
def test_a_repeated_listing_is_served_from_memory(api, shop) -> None:
    first = api.get(LISTING, as_="reader")
    # A write that fires no trigger is invisible to the feed, so only a cached page hides it.
    outside_write(api, "UPDATE deployments SET status = 'failed'", quietly=True)
    again = api.get(LISTING, as_="reader")
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    assert api.get(LISTING + "?limit=5", as_="reader").json()["deployments"][0]["status"] == (
        "failed"  # another page size is another entry, read fresh
    )


@pytest.mark.postgres
@postgres_only
def test_another_processes_write_shows_once_postgresql_notifies(api, shop) -> None:
    assert statuses(api) == ["pending"]
    outside_write(api, "UPDATE deployments SET status = 'failed'")
    until(lambda: statuses(api) == ["failed"], what="the notified change")


@pytest.mark.postgres
@postgres_only
def test_own_writes_are_listed_at_once(api, shop) -> None:
    app, first = shop
    assert statuses(api) == ["pending"]
    second = api.run(insert_artifact, app["id"])
    created = deploy(api, second["digest"])
    listed = api.get(LISTING, as_="reader").json()["deployments"]
    assert [item["id"] for item in listed] == [created["id"], first["id"]]
    assert head(api, second["digest"]) == 200


@pytest.mark.postgres
@postgres_only
def test_a_deleted_app_is_gone_at_once(api, shop) -> None:
    assert statuses(api) == ["pending"]
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    assert api.get(LISTING, as_="reader").status_code == 404


@pytest.mark.postgres
@postgres_only
def test_a_stored_artifact_is_answered_from_memory_until_deleted(api, shop) -> None:
    digest = shop[1]["artifact_digest"]
    assert head(api, digest) == 200
    outside_write(api, "DELETE FROM deployments", quietly=True)
    outside_write(api, "DELETE FROM artifacts", quietly=True)
    assert head(api, digest) == 200  # the row went without a notification: still cached
    app = api.get("/apps/shop").json()
    again = api.run(insert_artifact, app["id"], digest=digest)["digest"]
    assert head(api, again) == 200
    outside_write(api, "DELETE FROM deployments")
    outside_write(api, "DELETE FROM artifacts")  # another process, say retention elsewhere
    until(lambda: head(api, digest) == 404, what="the notified deletion")


@pytest.mark.postgres
@postgres_only
def test_a_missing_artifact_is_asked_again_every_time(api, shop) -> None:
    app, _ = shop
    missing = "c" * 64
    assert head(api, missing) == 404
    api.run(insert_artifact, app["id"], digest=missing)  # an upload completing (no notification)
    assert head(api, missing) == 200


@pytest.mark.postgres
@postgres_only
def test_an_artifact_of_a_deleted_app_is_gone_at_once(api, shop) -> None:
    digest = shop[1]["artifact_digest"]
    assert head(api, digest) == 200
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    assert head(api, digest) == 404


@pytest.mark.postgres
@postgres_only
def test_a_dropped_feed_reconnects_and_stays_fresh(api, shop) -> None:
    def listener_pids() -> set[int]:
        with psycopg.connect(api.state.db.url, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                f" AND {LISTENER}"
            ).fetchall()
        return {row[0] for row in rows}

    before = listener_pids()
    assert len(before) == 1
    assert statuses(api) == ["pending"]
    outside_write(  # what a database restart or a network cut does to the listener
        api,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = current_database() AND {LISTENER}",
    )
    until(
        lambda: listener_pids() - before and api.state.read_cache.active,
        what="the listener to reconnect",
    )
    assert statuses(api) == ["pending"]
    outside_write(api, "UPDATE deployments SET status = 'failed'")
    until(lambda: statuses(api) == ["failed"], what="the change after the reconnect")


@pytest.mark.postgres
@postgres_only
def test_caching_can_be_turned_off(make_api) -> None:
    api = make_api(env={"AETHER_READ_CACHE_SECS": "0"})
    listed_shop(api)
    outside_write(api, "UPDATE deployments SET status = 'failed'", quietly=True)
    assert statuses(api) == ["failed"]
    assert not api.state.read_cache.active


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_lists_from_the_database_every_time(api) -> None:
    listed_shop(api)
    api.run(lambda db: db.execute("UPDATE deployments SET status = 'failed'"))
    assert statuses(api) == ["failed"]
    assert api.state.read_cache.off_because == "SQLite has no change feed"


@pytest.mark.postgres
@postgres_only
def test_without_the_triggers_nothing_is_cached(make_api) -> None:
    migrated = make_api()
    until(lambda: migrated.state.read_cache.active, what="the change feed")
    outside_write(migrated, "DROP TRIGGER aether_artifact_changed ON artifacts")
    api = make_api(run_migrations=False)  # a server started on a schema not yet migrated
    until(lambda: api.state.read_cache.off_because, what="the server to check the triggers")
    assert api.state.read_cache.off_because == "the change triggers are missing"
    listed_shop(api)
    outside_write(api, "UPDATE deployments SET status = 'failed'", quietly=True)
    assert statuses(api) == ["failed"]
    assert not api.state.read_cache.active

"""Worker heartbeats and leases: a lease whose holder's heartbeat ran out is taken over at
once, long before the lease itself expires; a live holder keeps it."""

from __future__ import annotations

from aether.store import apps as app_store
from aether.store import leases, rollouts
from aether.store import workers as worker_store


def beat(worker_id: str) -> worker_store.Heartbeat:
    return worker_store.Heartbeat(id=worker_id, host="h", runtime="local", version="0")


async def test_a_gone_holder_loses_its_leases_at_once(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)
    await worker_store.heartbeat(database, beat("a"), dead_secs=30)
    assert await leases.acquire_lease(database, app["id"], "a", ttl_secs=600)
    assert not await leases.acquire_lease(database, app["id"], "b", ttl_secs=600)
    assert await worker_store.has_live_worker(database, "local")
    await worker_store.heartbeat(database, beat("a"), dead_secs=-1)  # its heartbeat ran out
    assert not await worker_store.has_live_worker(database, "local")
    (row,) = await rollouts.list_apps(database)
    assert row["holder"] == "a" and row["expires_at"] < (await _now(database))
    assert await leases.acquire_lease(database, app["id"], "b", ttl_secs=600)


async def test_a_holder_without_a_worker_row_keeps_its_lease(database) -> None:  # type: ignore[no-untyped-def]
    app = await app_store.create_app(database, "web", owner=None)
    assert await leases.acquire_lease(database, app["id"], "a", ttl_secs=600)
    assert not await leases.acquire_lease(database, app["id"], "b", ttl_secs=600)


async def test_a_clean_stop_keeps_leases_only_when_apps_run_on(database) -> None:  # type: ignore[no-untyped-def]
    await worker_store.heartbeat(database, beat("local-w"), dead_secs=30)
    await worker_store.mark_stopped(database, "local-w", keep_leases=True)
    (worker,) = await worker_store.list_workers(database)
    assert worker["alive"] is False and worker["stopped_at"]
    app = await app_store.create_app(database, "web", owner=None)
    assert await leases.acquire_lease(database, app["id"], "local-w", ttl_secs=600)
    assert not await leases.acquire_lease(database, app["id"], "other", ttl_secs=600)
    await worker_store.mark_stopped(database, "local-w", keep_leases=False)
    assert await leases.acquire_lease(database, app["id"], "other", ttl_secs=600)


async def _now(database) -> str:  # type: ignore[no-untyped-def]
    from aether.store.clock import now_iso

    return now_iso()

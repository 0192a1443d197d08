"""Layers in SQL: registered once, shared, counted once, deleted only when unnamed — also
when the deletion races a registration that reuses the layer. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from aether.errors import Conflict
from aether.store import apps, artifact_uploads, artifacts
from aether.store import artifact_layers as layers
from aether.store.database import Database, Row


def digest() -> str:
    return uuid.uuid4().hex * 2


async def stored_blob(db: Database, app: Row, size: int) -> str:
    value = digest()
    upload = await artifact_uploads.upsert(
        db,
        app_id=app["id"],
        digest=value,
        size_bytes=size,
        compression="zstd",
        storage_key=f"artifacts/{app['name']}/{value}/app.tar.zst",
    )
    await artifacts.complete(db, upload, signature=None, verified=False, idempotency_key=None)
    return value


async def register(db: Database, app: Row, named: list[tuple[str, str, int]]) -> Row:
    value = digest()
    row, created = await layers.register(
        db,
        app_id=app["id"],
        digest=value,
        size_bytes=100,
        storage_key=f"artifacts/{app['name']}/{value}/artifact.json",
        compression="zstd",
        layers=[layers.NamedLayer(*item) for item in named],
        signature=None,
        verified=False,
    )
    assert created
    return row


async def test_layers_are_shared_and_counted_once(database: Database) -> None:
    app = await apps.create_app(database, "shop", owner=None)
    deps = await stored_blob(database, app, 5000)
    first = await register(
        database, app, [("deps", deps, 5000), ("app", await stored_blob(database, app, 10), 10)]
    )
    await register(
        database, app, [("deps", deps, 5000), ("app", await stored_blob(database, app, 20), 20)]
    )
    count, total = await artifacts.app_usage(database, app["id"])
    assert count == 2  # two artifacts; their layers are not artifacts
    assert total == 5000 + 10 + 20 + 2 * 100  # the shared layer once
    rows = await layers.layers_of(database, first["digest"])
    assert [(r["name"], r["digest"]) for r in rows][0] == ("deps", deps)
    assert all(r["storage_key"] for r in rows)
    candidates = await artifacts.retention_candidates(database, app["id"], keep=0)
    assert {r["kind"] for r in candidates} == {"layered"}


async def test_a_missing_or_resized_layer_is_refused(database: Database) -> None:
    app = await apps.create_app(database, "shop", owner=None)
    app_layer = await stored_blob(database, app, 10)
    with pytest.raises(Conflict, match="not stored"):
        await register(database, app, [("deps", digest(), 5), ("app", app_layer, 10)])
    with pytest.raises(Conflict, match="not stored"):
        await register(database, app, [("app", app_layer, 11)])
    assert await layers.orphaned_layers(database) == []


async def test_a_layer_goes_only_when_no_artifact_names_it(database: Database) -> None:
    app = await apps.create_app(database, "shop", owner=None)
    deps = await stored_blob(database, app, 5000)
    one = await register(
        database, app, [("deps", deps, 5000), ("app", await stored_blob(database, app, 10), 10)]
    )
    two = await register(
        database, app, [("deps", deps, 5000), ("app", await stored_blob(database, app, 20), 20)]
    )
    deleted: list[str] = []

    async def delete_object(key: str) -> None:
        deleted.append(key)

    await artifacts.delete_stored(database, one["id"])
    orphans = await layers.orphaned_layers(database)
    assert deps not in {r["digest"] for r in orphans}  # the second artifact still names it
    for row in orphans:
        assert await layers.delete_if_orphaned(database, row, delete_object)
    await artifacts.delete_stored(database, two["id"])
    orphans = await layers.orphaned_layers(database)
    assert deps in {r["digest"] for r in orphans}
    for row in orphans:
        assert await layers.delete_if_orphaned(database, row, delete_object)
    assert await artifacts.get_by_digest(database, deps) is None
    assert any(deps in key for key in deleted)


async def test_gc_racing_a_deploy_that_reuses_the_layer(database: Database) -> None:
    """Either the registration wins (the layer stays, named) or the GC does (the layer is
    gone and the registration says so): never an artifact naming a deleted layer."""
    app = await apps.create_app(database, "shop", owner=None)
    outcomes = set()
    for _ in range(8):
        deps = await stored_blob(database, app, 5000)
        old = await register(
            database, app, [("deps", deps, 5000), ("app", await stored_blob(database, app, 10), 10)]
        )
        await artifacts.delete_stored(database, old["id"])
        (orphan,) = [r for r in await layers.orphaned_layers(database) if r["digest"] == deps]
        app_layer = await stored_blob(database, app, 10)
        objects: list[str] = []

        async def delete_object(key: str, objects: list[str] = objects) -> None:
            await asyncio.sleep(0)  # let the registration run while the GC holds the row
            objects.append(key)

        gc, deploy = await asyncio.gather(
            layers.delete_if_orphaned(database, orphan, delete_object),
            register(database, app, [("deps", deps, 5000), ("app", app_layer, 10)]),
            return_exceptions=True,
        )
        row = await artifacts.get_by_digest(database, deps)
        if isinstance(deploy, Conflict):
            assert gc is True and row is None and objects
            outcomes.add("gc")
        else:
            assert not isinstance(deploy, BaseException), deploy
            assert gc is False and row is not None and not objects
            assert [r["storage_key"] for r in await layers.layers_of(database, deploy["digest"])][0]
            outcomes.add("deploy")
    assert outcomes  # at least one ordering was exercised each round

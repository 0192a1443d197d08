"""Rotating the secrets key while servers run: `aether admin rotate-key` against the database
and key file two running API replicas share; values keep opening throughout, new writes take
the new key, the old key is retired and leaves the file."""

from __future__ import annotations

import asyncio
import threading

import pytest
from seeding import insert_artifact

from aether.errors import ConfigError
from aether.sealing import KeyFile, KeyRing, box_key_id, new_key
from aether.server import secrets_admin, store_admin
from aether.store import config_vars, sealed_values, secret_keys
from aether.store.secret_keys import sealing_key_id


def _reveal(api, name="shop"):
    answer = api.get(f"/apps/{name}/config?reveal=true", as_="deployer")
    assert answer.status_code == 200, answer.text
    return {item["name"]: item["value"] for item in answer.json()["vars"]}


def _rotate(settings) -> tuple[dict, list[str]]:
    """Run the command's function on its own thread (its own event loop), as an operator
    would from another process."""
    said: list[str] = []
    result: dict = {}

    def run() -> None:
        result.update(store_admin.rotate_secrets_key(settings, say=said.append))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return result, said


def test_rotate_key_while_two_replicas_serve(make_api):
    one = make_api()
    two = make_api()  # a second replica: same database, same data dir and key file
    app = one.post("/apps", json={"name": "shop"}, as_="deployer").json()
    artifact = one.run(insert_artifact, app["id"])
    one.request(
        "PATCH", "/apps/shop/config", json={"set": {"DATABASE_URL": "pg://a"}}, as_="deployer"
    )
    one.post(
        "/deployments",
        json={"app_name": "shop", "artifact_digest": artifact["digest"], "env": {"T": "one-off"}},
        as_="deployer",
    )
    old = one.state.keyring.first_key_id
    settings = one.state.settings

    result, said = _rotate(settings)

    new = result["key_id"]
    assert new != old and result["retired"] == [old] and result["removed"] == [old]
    assert result["resealed"] == 2 and any("seals new values" in line for line in said)
    assert KeyRing(KeyFile(settings.secrets.key_file, create=False)).key_ids == {new}
    # Both replicas still hold the old key in memory; they find the new one in the file.
    for replica in (one, two):
        assert _reveal(replica) == {"DATABASE_URL": "pg://a"}
    changed = two.request(
        "PATCH", "/apps/shop/config", json={"set": {"DATABASE_URL": "pg://b"}}, as_="deployer"
    )
    assert changed.status_code == 200
    assert _reveal(one) == {"DATABASE_URL": "pg://b"}
    keys = {row["key_id"]: row["state"] for row in one.run(secret_keys.list_keys)}
    assert keys == {old: "retired", new: "primary"}
    assert one.run(sealed_values.count_stale, new) == 0
    again, _ = _rotate(settings)  # and the next rotation the same way

    assert again["retired"] == [new]


def test_rotation_with_keys_from_the_environment_waits_for_a_new_key(make_api):
    first = new_key()
    api = make_api(env={"AETHER_SECRETS_KEY": first})
    api.post("/apps", json={"name": "shop"}, as_="deployer")
    api.request("PATCH", "/apps/shop/config", json={"set": {"A": "1"}}, as_="deployer")
    settings = api.state.settings
    with pytest.raises(ConfigError, match="aether admin new-key"):
        store_admin.rotate_secrets_key(settings, say=lambda _: None)
    from dataclasses import replace

    second = new_key()
    both = replace(settings, secrets=replace(settings.secrets, keys=f"{first},{second}"))
    result = store_admin.rotate_secrets_key(both, say=lambda _: None)
    assert result["resealed"] == 1 and result["removed"] == []  # the operator removes it
    assert len(result["retired"]) == 1
    # The running server was given only the first key: it cannot open values any more and
    # says which key it lacks instead of failing obscurely.
    lacking = api.get("/apps/shop/config?reveal=true", as_="deployer")
    assert lacking.status_code == 503 and result["key_id"] in lacking.json()["message"]


async def test_writes_during_a_rotation_all_end_under_the_new_key(database, tmp_path):
    path = tmp_path / "secrets.keys"
    admin_ring = KeyRing(KeyFile(path, create=True))  # the operator's command
    replica_ring = KeyRing(KeyFile(path, create=False))  # a server writing meanwhile
    await secret_keys.ensure_primary(database, replica_ring)
    app_id = "app-1"
    await database.execute(
        "INSERT INTO applications (id, name, created_at) VALUES (:id, 'shop', '2026')",
        {"id": app_id},
    )
    stop = asyncio.Event()
    written = []

    async def writer() -> None:
        n = 0
        while not stop.is_set() or n < 5:
            n += 1
            async with database.transaction() as tx:
                kid = await sealing_key_id(tx, replica_ring)
                sealed = {"V": replica_ring.seal(f"value-{n}", kid=kid, app_id=app_id, name="V")}
                await config_vars.add_version(tx, app_id, sealed, description="w", created_by=None)
            written.append(n)
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    result = await secrets_admin.rotate(database, admin_ring)
    stop.set()
    await task
    assert len(written) >= 5
    new_only = KeyRing(KeyFile(path, create=False))
    assert new_only.key_ids == {result["key_id"]}
    rows = [row async for row in sealed_values.sealed_rows(database)]
    assert len(rows) == len(written)
    for row in rows:
        (box,) = row.vars.values()
        assert box_key_id(box["box"]) == result["key_id"]
        assert new_only.unseal(box, app_id=app_id, name="V").startswith("value-")

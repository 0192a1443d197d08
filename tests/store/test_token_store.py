"""Token storage: hashes only, expiry, revocation, bootstrap specs, pull tokens."""

from __future__ import annotations

import pytest

from aether.errors import ConfigError
from aether.store import tokens


async def test_authenticate_finds_live_tokens_only(database):
    issued = await tokens.create_token(database, name="ci", role="deployer")
    row = await tokens.authenticate(database, issued.token)
    assert row["id"] == issued.row["id"] and row["role"] == "deployer"
    assert (await tokens.get_token(database, row["id"]))["last_used_at"] is not None
    assert await tokens.authenticate(database, issued.token + "x") is None
    assert await tokens.authenticate(database, "") is None
    assert await tokens.revoke_token(database, issued.row["id"]) is True
    assert await tokens.authenticate(database, issued.token) is None
    assert await tokens.revoke_token(database, issued.row["id"]) is False


async def test_plaintext_is_never_stored(database):
    issued = await tokens.create_token(database, name="ci", role="reader")
    rows = await database.fetch_all("SELECT * FROM api_tokens")
    assert all(issued.token not in str(value) for row in rows for value in row.values())
    assert rows[0]["token_hash"] == tokens.hash_token(issued.token)


async def test_expired_tokens_are_refused(database):
    issued = await tokens.create_token(database, name="short", role="reader", ttl_secs=3600)
    assert await tokens.authenticate(database, issued.token) is not None
    await database.execute(
        "UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = :id",
        {"id": issued.row["id"]},
    )
    assert await tokens.authenticate(database, issued.token) is None


async def test_rotate_keeps_identity_and_kills_the_old_token(database):
    issued = await tokens.create_token(database, name="laptop", role="deployer", ttl_secs=600)
    rotated = await tokens.rotate_token(database, issued.row["id"])
    assert rotated.row["user_id"] == issued.row["user_id"]
    assert rotated.row["expires_at"] == issued.row["expires_at"]
    assert await tokens.authenticate(database, issued.token) is None
    assert (await tokens.authenticate(database, rotated.token))["name"] == "laptop"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("abc", ("abc", "admin", "dflt")),
        ("abc:reader", ("abc", "reader", "dflt")),
        ("abc:deployer:ci", ("abc", "deployer", "ci")),
    ],
)
def test_bootstrap_specs(spec, expected):
    assert tokens.parse_bootstrap_spec(spec, default_name="dflt") == expected


@pytest.mark.parametrize("spec", [":admin", "abc:root", "abc:puller"])
def test_bad_bootstrap_specs_are_config_errors(spec):
    with pytest.raises(ConfigError):
        tokens.parse_bootstrap_spec(spec, default_name="x")


async def test_bootstrap_sync_is_idempotent_and_keeps_revocations(database):
    specs = [("boot-secret-1", "admin", "admin"), ("boot-secret-2", "reader", "ops")]
    assert await tokens.sync_bootstrap_tokens(database, specs) == 2
    assert await tokens.sync_bootstrap_tokens(database, specs) == 0
    row = await tokens.authenticate(database, "boot-secret-2")
    await tokens.revoke_token(database, row["id"])
    assert await tokens.sync_bootstrap_tokens(database, specs) == 0
    assert await tokens.authenticate(database, "boot-secret-2") is None
    assert await tokens.count_live_tokens(database) == 1


async def test_pull_tokens_are_scoped_and_not_counted_as_logins(database):
    token = await tokens.create_pull_token(database, deployment_id="dep-1", ttl_secs=300)
    row = await tokens.authenticate(database, token)
    assert row["role"] == "puller" and row["deployment_id"] == "dep-1"
    assert await tokens.count_live_tokens(database) == 0

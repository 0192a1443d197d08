"""Releases for tests of other components: what a deploy through the API writes, without
the API (``await deploy_release(db, app_id, digest)``)."""

from __future__ import annotations

from aether.sealing import KeyRing, new_key
from aether.store import config_vars, releases
from aether.store.database import Database, Executor, Row
from aether.store.deployments import lock_app
from aether.store.releases import Outcome, Proposal, ReleaseSpec
from aether.store.secret_keys import ensure_primary, sealing_key_id

TEST_RING = KeyRing.of(new_key())


async def deploy_release(
    db: Database,
    app_id: str,
    digest: str,
    *,
    env: dict[str, str] | None = None,
    start_command: str | None = None,
    replicas: int = 1,
    ring: KeyRing = TEST_RING,
) -> Outcome:
    """A release of ``digest`` with ``env`` as one-off values (sealed with ``ring``, which
    must be the one the database's readers hold), and its pending deployment."""
    if env:
        await ensure_primary(db, ring)

    async def make(tx: Executor, base: Row | None) -> Proposal:
        config = await config_vars.current(tx, app_id)
        overrides = {}
        if env:
            kid = await sealing_key_id(tx, ring)
            overrides = {
                name: ring.seal(value, kid=kid, app_id=app_id, name=name)
                for name, value in sorted(env.items())
            }
        spec = ReleaseSpec(
            artifact_digest=digest,
            config_version=config.version,
            overrides=overrides,
            start_command=start_command,
            replicas=replicas,
        )
        fingerprints = {name: box["fp"] for name, box in {**config.vars, **overrides}.items()}
        return Proposal(spec, "deploy", f"Deploy {digest[:12]}", fingerprints, None)

    async with db.transaction() as tx:
        await lock_app(tx, app_id)
        outcome = await releases.propose(tx, app_id, make)
    # No wake-up: loop tests decide how their worker learns of it (poll, NOTIFY, poke).
    return outcome


async def set_config(
    db: Database, app_id: str, values: dict[str, str], *, ring: KeyRing = TEST_RING
) -> int:
    """A new config version holding ``values`` (what ``aether config set`` stores)."""
    await ensure_primary(db, ring)
    async with db.transaction() as tx:
        kid = await sealing_key_id(tx, ring)
        sealed = {
            name: ring.seal(value, kid=kid, app_id=app_id, name=name)
            for name, value in sorted(values.items())
        }
        return await config_vars.add_version(
            tx, app_id, sealed, description="test", created_by=None
        )

"""Rotating the secrets key without downtime (``aether admin rotate-key``).

1. The new key: one the ring holds that the database has never used (an operator put it in
   ``AETHER_SECRETS_KEY`` or a read-only key file on every server), else — when the key
   file is writable, as the embedded default's is — a fresh one appended to the file.
2. Promote it: from this commit on every server seals new values with it
   (:mod:`aether.store.secret_keys`); a server that has not read it yet reads its key file
   again when it meets the unknown key id. The old key becomes *retiring* and keeps opening
   values, so nothing fails while values move.
3. Re-seal every value under the new key (compare-and-swap per row).
4. Retire the old key in a transaction that first checks no value is left under it (and on
   PostgreSQL waits for writes that still hold it), re-sealing again if one slipped in.
5. Remove the retired key from a writable key file; an operator removes it from
   ``AETHER_SECRETS_KEY`` (or the mounted file) at the next convenient restart.

An interrupted rotation is finished by running the command again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aether.errors import ConfigError, InternalError
from aether.sealing import KeyRing, new_key
from aether.store import sealed_values, secret_keys
from aether.store.database import Database

ROUNDS = 5  # re-seal passes before giving up on values that keep arriving under old keys
Say = Callable[[str], None]


async def rotate(db: Database, ring: KeyRing, *, say: Say = lambda _: None) -> dict[str, Any]:
    known = {row["key_id"]: row["state"] for row in await secret_keys.list_keys(db)}
    new_kid = _new_key(ring, known, say)
    retiring = await secret_keys.promote(db, new_kid)
    say(f"key {new_kid} seals new values from now on; retiring {', '.join(retiring) or 'none'}")
    resealed = 0
    for _ in range(ROUNDS):
        resealed += await _reseal_pass(db, ring, new_kid)
        if await _retire(db, new_kid):
            break
    else:
        raise InternalError(
            f"values kept arriving under old keys after {ROUNDS} passes; run the command again"
        )
    say(f"re-sealed {resealed} value(s); retired {', '.join(retiring) or 'nothing'}")
    removed = _forget(ring, retiring)
    return {"key_id": new_kid, "retired": retiring, "resealed": resealed, "removed": removed}


def _new_key(ring: KeyRing, known: dict[str, str], say: Say) -> str:
    unused = sorted(kid for kid in ring.key_ids if kid not in known)
    if len(unused) > 1:
        raise ConfigError(
            f"{ring.source.description} holds several keys the database never used "
            f"({', '.join(unused)}); keep one new key"
        )
    if unused:
        return unused[0]
    if any(state == "retiring" for state in known.values()):
        primary = next(kid for kid, state in known.items() if state == "primary")
        say(f"finishing the rotation to {primary} that was interrupted")
        return primary
    if not ring.source.can_write():
        raise ConfigError(
            f"add a new key to {ring.source.description} on every server first "
            "(`aether admin new-key` prints one), then run this again"
        )
    before = ring.key_ids
    ring.source.add(new_key())
    ring.reload()
    (added,) = ring.key_ids - before
    say(f"added key {added} to {ring.source.description}")
    return added


async def _reseal_pass(db: Database, ring: KeyRing, kid: str) -> int:
    done = 0
    async for row in sealed_values.sealed_rows(db):
        done += await sealed_values.reseal(db, row, ring, kid)
    return done


async def _retire(db: Database, kid: str) -> bool:
    async with db.transaction() as tx:
        retiring = await secret_keys.lock_retiring(tx)
        if await sealed_values.count_stale(tx, kid):
            return False
        await secret_keys.mark_retired(tx, retiring)
    return True


def _forget(ring: KeyRing, retired: list[str]) -> list[str]:
    """Remove retired keys from a writable key file (what it held of them)."""
    held = [kid for kid in retired if kid in ring.key_ids]
    if held and ring.source.can_write():
        ring.source.remove(held)
        ring.reload()
        return held
    return []

"""App leases: one worker handles an app at a time.

A row in ``app_leases`` (holder + expiry) gives a worker an app until the expiry, renewed as
it works; an expired lease is taken over by whichever worker asks next, and so is the lease of
a holder whose heartbeat (``workers.expires_at``, :mod:`aether.store.workers`) ran out: a
killed worker's apps move within ``AETHER_WORKER_DEAD_SECS``, not a whole lease.
"""

from __future__ import annotations

from aether.store.clock import now_iso
from aether.store.database import Executor


async def acquire_lease(db: Executor, app_id: str, holder: str, ttl_secs: float) -> bool:
    """Take or renew the app's lease; False while another worker holds an unexpired one."""
    now = now_iso()
    await db.execute(
        "INSERT INTO app_leases (app_id, holder, expires_at) VALUES (:app_id, :holder, :expires)"
        " ON CONFLICT (app_id) DO UPDATE SET holder = excluded.holder,"
        " expires_at = excluded.expires_at"
        " WHERE app_leases.holder = excluded.holder OR app_leases.expires_at < :now"
        # A holder whose worker row says it is gone loses the lease at once.
        " OR EXISTS (SELECT 1 FROM workers w WHERE w.id = app_leases.holder"
        " AND w.expires_at < :now)",
        {"app_id": app_id, "holder": holder, "expires": now_iso(ttl_secs), "now": now},
    )
    owner = await db.fetch_value(
        "SELECT holder FROM app_leases WHERE app_id = :app_id", {"app_id": app_id}
    )
    return bool(owner == holder)


async def release_leases(db: Executor, holder: str) -> int:
    return await db.execute("DELETE FROM app_leases WHERE holder = :holder", {"holder": holder})

"""``AETHER_RETAIN_LATEST_PER_APP``: keep the newest N stored artifacts of an app, delete the
rest — rows and objects — except any used by a live deployment or by the previous successful
one. Each deletion leaves a ``retention_delete`` row in ``artifact_events``, which has no
foreign key and so outlives the artifact.
"""

from __future__ import annotations

import logging

from aether.errors import AetherError, Conflict
from aether.server.artifacts import metrics
from aether.server.state import ServerState
from aether.store import artifact_layers as layer_store
from aether.store import artifact_references as reference_store
from aether.store import artifacts as artifact_store
from aether.store.database import Row

log = logging.getLogger("aether.server.retention")


async def refresh_artifact_gauge(state: ServerState) -> None:
    metrics.ARTIFACTS_TOTAL.set(await artifact_store.count_stored(state.db))


async def apply_retention(state: ServerState, app_id: str) -> int:
    """Delete what the policy no longer keeps for one app; returns how many were deleted."""
    keep = state.policy.retain_latest_per_app
    removed = 0
    if keep > 0:
        for row in await artifact_store.retention_candidates(state.db, app_id, keep=keep):
            if await _delete_one(state, row, keep):
                removed += 1
    # also without a retention policy: deleting an app can leave other apps' layers unnamed
    removed += await delete_orphaned_layers(state)
    if removed:
        await refresh_artifact_gauge(state)
    return removed


async def _delete_one(state: ServerState, row: Row, keep: int) -> bool:
    """Delete the artifact, or, when another app holds a reference to its bytes, only this
    app's reference (the bytes pass to that app): one tenant's policy never takes another's."""
    holders = await reference_store.other_holders(state.db, row["digest"], row["app_id"])
    if holders:
        async with state.db.transaction() as tx:
            await artifact_store.pass_to(tx, row, holders[0])
            await artifact_store.add_event(
                tx, row, "retention_release", f"kept the newest {keep}; another app holds it"
            )
        metrics.EVENTS.inc()
        return True
    try:
        async with state.db.transaction() as tx:
            dropped = await artifact_store.delete_stored(tx, row["id"])
            await artifact_store.add_event(
                tx,
                row,
                "retention_delete",
                f"kept the newest {keep}; removed {dropped} finished deployments using it",
            )
    except Conflict:
        return False  # a deployment started using it meanwhile: keep it
    metrics.EVENTS.inc()
    metrics.RETENTION_DELETED.inc()
    try:
        await state.blobs.delete(row["storage_key"])
    except AetherError as exc:  # the row is gone; an orphan object is only wasted space
        log.warning("retention could not delete object %s: %s", row["storage_key"], exc)
    return True


async def delete_orphaned_layers(state: ServerState) -> int:
    """Delete the layers no stored artifact names any more (rows and objects)."""
    removed = 0
    for row in await layer_store.orphaned_layers(state.db):
        try:
            if await layer_store.delete_if_orphaned(state.db, row, state.blobs.delete):
                removed += 1
                metrics.EVENTS.inc()
        except AetherError as exc:  # the object could not be deleted: row kept, next pass
            log.warning("could not delete layer object %s: %s", row["storage_key"], exc)
    return removed

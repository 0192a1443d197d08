"""The reconciliation loop: for every app, make the runtime match the desired deployment.

Level-triggered: each pass reads the app's deployments and what the runtime observes, asks
:func:`aether.worker.plan.plan` for actions and applies them. Work is serialised per app (one
task per app at a time, under a lease in ``app_leases``), different apps run in parallel.
Passes run on a short poll (SQLite) or when PostgreSQL NOTIFYs a new deployment (with a slow
poll as a safety net). A step that raises :class:`Retry` is tried again after its delay until
the rollout timeout; :class:`Fatal` fails the deployment with its message as the reason.
``stop()`` (SIGTERM) ends the loop. Local apps go on running and this worker keeps their leases
(a restarted worker has the same identity and adopts them); other runtimes release theirs.
Only a deleted app has its workload removed (``_forget_deleted_apps``, ``_sweep_orphans``);
the plan itself never removes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aether import __version__
from aether.errors import AetherError, NetworkError, ServiceUnavailable
from aether.sealing import KeyRing
from aether.settings import WorkerSettings
from aether.store import instances, leases, rollouts, wakeups, workers
from aether.store.clock import now_iso
from aether.store.database import Database, Row
from aether.worker.apply import Applier
from aether.worker.logship import LogShipper
from aether.worker.outcomes import Retry
from aether.worker.plan import DeploymentState, changes_anything, plan
from aether.worker.runtimes.base import Runtime

log = logging.getLogger("aether.worker")

# On PostgreSQL, NOTIFY wakes the loop; polling is only the safety net (lease takeovers).
PG_SAFETY_POLL_SECS = 5.0
# On SQLite, how often the loop looks for new pending deployments between full passes.
PENDING_CHECK_SECS = 0.02
# How often the runtime is asked for apps whose rows are gone (their objects outlive workers).
ORPHAN_SWEEP_SECS = 60.0
# An app's instance rows are written when they change, and at least this often.
INSTANCES_REFRESH_SECS = 15.0


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class _AppSlot:
    """What the worker remembers about one app between passes."""

    name: str
    task: asyncio.Task[bool] | None = None
    not_before: float = 0.0
    held: bool = False
    first_retry: dict[str, float] = field(default_factory=dict)
    noted: set[str] = field(default_factory=set)
    instances: list[dict[str, Any]] | None = None  # as last recorded
    instances_at: float = 0.0
    look_again: bool = False  # a pass came while ``task`` ran: one more when it ends


class Worker:
    """One reconciliation loop over one database and one runtime."""

    def __init__(
        self,
        db: Database,
        runtime: Runtime,
        settings: WorkerSettings,
        *,
        public_url: str | None = None,
        holder: str | None = None,
        keyring: KeyRing | None = None,
    ) -> None:
        self.db = db
        self.runtime = runtime
        self.settings = settings
        # A local runtime names itself the same after a restart (it adopts its apps).
        self.holder = holder or getattr(runtime, "holder", None) or worker_identity()
        self.applier = Applier(
            db, runtime, settings, public_url=public_url, keyring=keyring, holder=self.holder
        )
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.listening = asyncio.Event()  # PostgreSQL: NOTIFYs reach the loop from now on
        self._slots: dict[str, _AppSlot] = {}
        self._seen_pending: set[str] = set()
        self._next_sweep = 0.0  # the first pass sweeps
        self._background: set[asyncio.Task[None]] = set()
        self.shipper = LogShipper(db, runtime, self.held_apps)

    def held_apps(self) -> dict[str, str]:
        """The apps this worker holds now (id -> name)."""
        return {app_id: slot.name for app_id, slot in self._slots.items() if slot.held}

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self.stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Reconcile until ``stop()``; then stop the runtime and release the leases."""
        await rollouts.ensure_notify_trigger(self.db)
        await self.runtime.start()
        await self._heartbeat_once()
        helpers = [
            asyncio.create_task(self._renew_leases()),
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self.shipper.run(self.stopping)),
        ]
        if self.db.dialect == "postgresql":
            helpers.append(asyncio.create_task(self._listen()))
        try:
            # Deployments created in this process (`aether serve`) wake the loop at once.
            with wakeups.subscribe(wakeups.NEW_DEPLOYMENT, self._wake):
                while not self.stopping.is_set():
                    await self._guarded_pass()
                    await self._sleep(self._poll_secs())
        finally:
            await self._shutdown(helpers)

    def _poll_secs(self) -> float:
        if self.db.dialect == "postgresql":
            return max(self.settings.poll_interval_secs, PG_SAFETY_POLL_SECS)
        return self.settings.poll_interval_secs

    async def _guarded_pass(self) -> None:
        try:
            await self.run_once()
        except (ServiceUnavailable, NetworkError) as exc:
            log.warning("reconcile pass skipped: %s", exc.message)

    async def _sleep(self, secs: float) -> None:
        """Until the next pass is due, a wake-up, or (SQLite) a new pending deployment."""
        deadline = time.monotonic() + secs
        step = secs if self.db.dialect == "postgresql" else PENDING_CHECK_SECS
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(step, left))
                break
            if await self._new_pending():
                break
        self._wake.clear()

    async def _new_pending(self) -> bool:
        """A cheap check between passes: has a deployment been created since the last one?"""
        try:
            pending = await rollouts.pending_ids(self.db)
        except AetherError:
            return False
        fresh = bool(pending - self._seen_pending)
        self._seen_pending = pending
        return fresh

    async def run_once(self, *, wait: bool = False) -> None:
        """One pass: start a reconcile task for every app that is due. With ``wait``, return
        only when those tasks are done (tests drive the loop this way)."""
        apps = await rollouts.list_apps(self.db)
        started = [task for app in apps if (task := self._maybe_start(app)) is not None]
        await self._forget_deleted_apps({app["id"] for app in apps})
        await self._sweep_orphans()
        if wait and started:
            await asyncio.gather(*started, return_exceptions=True)

    def _maybe_start(self, app: Row) -> asyncio.Task[bool] | None:
        slot = self._slots.setdefault(app["id"], _AppSlot(app["name"]))
        if slot.task is not None and not slot.task.done():
            # That task may have read the app's plan before what woke this pass (a new
            # deployment): look again as soon as it ends, not at the next poll.
            if not slot.look_again:
                slot.look_again = True
                slot.task.add_done_callback(lambda _task: self._look_again(slot))
            return None
        if time.monotonic() < slot.not_before:
            return None
        if self._leased_elsewhere(app) and not slot.held:
            self._let_go(app["name"])
            return None  # (a lease lost while held is noticed by _hold, which stops the app)
        slot.task = asyncio.create_task(self._reconcile(app["id"], slot), name=app["name"])
        return slot.task

    def _look_again(self, slot: _AppSlot) -> None:
        slot.look_again = False
        self._wake.set()

    def _let_go(self, app_name: str) -> None:
        """An app this worker ran before a restart now belongs to another worker: stop the
        processes still running here (the other worker runs its own)."""
        if app_name in getattr(self.runtime, "adopted", ()):
            self.runtime.adopted.discard(app_name)  # type: ignore[attr-defined]
            task = asyncio.create_task(self.runtime.release_app(app_name))  # type: ignore[attr-defined]
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _leased_elsewhere(self, app: Row) -> bool:
        holder, expires_at = app.get("holder"), app.get("expires_at")
        if holder is None or holder == self.holder:
            return False
        return expires_at is not None and expires_at > now_iso()

    async def _reconcile(self, app_id: str, slot: _AppSlot) -> bool:
        """One app, one pass; True when something was done (wake the loop again)."""
        try:
            if not await self._hold(app_id, slot):
                return False
            rows = await rollouts.plan_rows(self.db, app_id)
            states = [DeploymentState(r["id"], r["status"], i) for i, r in enumerate(rows)]
            actions = plan(states, await self.runtime.observe(slot.name))
            for action in actions:
                await self.applier.apply(slot.name, action, slot=slot)
            if not changes_anything(actions):
                await self.applier.resume(slot.name)
            await self._record_instances(app_id, slot)
        except Retry as later:  # a transient fault: this app again after its delay
            log.debug("retrying %s in %gs: %s", slot.name, later.delay, later.message)
            self._retry_after(slot, later.delay)
            return False
        except AetherError as exc:
            log.warning("reconciling %s failed, will retry: %s", slot.name, exc.message)
            self._retry_after(slot, 1.0)
            return False
        if changes_anything(actions):
            self._wake.set()  # look again at once: the plan should now be settled
            return True
        return False

    async def _record_instances(self, app_id: str, slot: _AppSlot) -> None:
        """Write the app's instances when they changed (or now and then, so readers see
        they are fresh): every API replica answers ``aether ps`` from them."""
        rows = await self.applier.instance_rows(slot.name)
        if rows is None:
            return
        fresh = time.monotonic() - slot.instances_at < INSTANCES_REFRESH_SECS
        if rows == slot.instances and fresh:
            return
        await instances.replace(self.db, app_id, self.holder, rows)
        slot.instances, slot.instances_at = rows, time.monotonic()

    async def _hold(self, app_id: str, slot: _AppSlot) -> bool:
        held = await leases.acquire_lease(self.db, app_id, self.holder, self.settings.lease_secs)
        # A cluster's objects are shared by all workers (runtime.per_worker False): the new
        # holder keeps them, so only a per-process runtime stops the app here.
        if slot.held and not held and getattr(self.runtime, "per_worker", True):
            log.warning("lost the lease on %s; stopping it here", slot.name)
            await self.runtime.remove(slot.name)
        slot.held = held
        return held

    def _retry_after(self, slot: _AppSlot, delay: float) -> None:
        slot.not_before = time.monotonic() + delay
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _forget_deleted_apps(self, existing: set[str]) -> None:
        for app_id in [a for a in self._slots if a not in existing]:
            slot = self._slots[app_id]
            if slot.task is not None and not slot.task.done():
                continue
            del self._slots[app_id]
            if slot.held:
                await self.runtime.remove(slot.name)

    async def _sweep_orphans(self) -> None:
        """Remove what the runtime still runs for apps deleted while no worker held them (a
        worker that was down, or crashed holding the app). Cheap, but not every pass."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + ORPHAN_SWEEP_SECS
        managed = await self.runtime.managed_apps()
        if not managed:
            return
        # Listed after the runtime answered: an app whose objects exist was created before
        # them, so it shows up here; nothing a live app owns is taken for an orphan.
        existing = {app["name"] for app in await rollouts.list_apps(self.db)}
        for name in sorted(managed - existing):
            log.info("removing %s from the runtime: its app was deleted", name)
            await self.runtime.remove(name)

    async def _renew_leases(self) -> None:
        """Keep the leases of held apps alive while long rollouts run."""
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.lease_secs / 3)
            for app_id, slot in list(self._slots.items()):
                if slot.held:  # a lost lease is noticed (and acted on) by the next pass
                    with contextlib.suppress(AetherError):
                        await leases.acquire_lease(
                            self.db, app_id, self.holder, self.settings.lease_secs
                        )

    def _heartbeat(self) -> workers.Heartbeat:
        capabilities = getattr(self.runtime, "capabilities", None)
        about = capabilities() if capabilities is not None else {}
        return workers.Heartbeat(
            id=self.holder,
            host=socket.gethostname(),
            runtime=self.runtime.name,
            version=__version__,
            advertise_addr=getattr(self.runtime, "advertise_addr", None),
            isolation=about.get("isolation") or {"kind": self.runtime.name},
            apps=sorted(slot.name for slot in self._slots.values() if slot.held),
        )

    async def _heartbeat_once(self) -> None:
        try:
            await workers.heartbeat(self.db, self._heartbeat(), dead_secs=self.settings.dead_secs)
        except AetherError as exc:
            log.warning("heartbeat failed: %s", exc.message)

    async def _heartbeats(self) -> None:
        """Say this worker is alive (and what it holds) every AETHER_WORKER_HEARTBEAT_SECS."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.settings.heartbeat_secs)
            if not self.stopping.is_set():
                await self._heartbeat_once()

    async def _listen(self) -> None:
        listen: Any = getattr(self.db, "listen", None)
        while listen is not None and not self.stopping.is_set():
            try:
                async for _payload in listen(rollouts.NOTIFY_CHANNEL, self._now_listening):
                    self._wake.set()
            except ServiceUnavailable as exc:
                self.listening.clear()
                log.warning("LISTEN failed, polling until it reconnects: %s", exc.message)
                await asyncio.sleep(1.0)

    def _now_listening(self) -> None:
        # A deployment created while no LISTEN was in effect sent its NOTIFY to nobody:
        # one pass now catches up on it instead of waiting for the safety poll.
        self.listening.set()
        self._wake.set()

    async def _shutdown(self, helpers: list[asyncio.Task[Any]]) -> None:
        running = [s.task for s in self._slots.values() if s.task and not s.task.done()]
        for task in [*helpers, *running]:
            task.cancel()
        await asyncio.gather(*helpers, *running, *self._background, return_exceptions=True)
        await self.runtime.stop()
        outlive = getattr(self.runtime, "apps_outlive_worker", False)
        with contextlib.suppress(AetherError):
            await workers.mark_stopped(self.db, self.holder, keep_leases=outlive)
        if outlive:
            return  # they still run here: the restarted worker (same holder) keeps them
        with contextlib.suppress(AetherError):
            await leases.release_leases(self.db, self.holder)

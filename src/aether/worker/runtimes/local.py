"""The local runtime: each app is a sandboxed Node.js process on its own port.

A deploy prepares the release folder (download, verify, extract), starts the start command
under a supervisor (:mod:`aether.worker.runtimes.shim`) with ``PORT`` set to a free port,
waits until it answers HTTP, records ``healthy`` (the cutover point: ``observe`` already
reports the new release, so the loop marks it running and the Host-header proxy switches),
then stops the previous process in the background (after a short drain), so the app's next
deployment never waits for it. A release that exits or never answers is stopped and the
previous one keeps serving.

Apps outlive the worker: stopping the runtime (SIGTERM of the worker) or killing it leaves
the supervisors running, and the next worker with the same data dir adopts them. Apps stop
when they are removed (app deleted, lease lost) or by :meth:`LocalRuntime.stop_apps`
(``aether worker --stop-apps``). How apps are confined: docs/security.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from aether.errors import AetherError, BadRequest, ConfigError
from aether.settings import WorkerSettings
from aether.worker.outcomes import Fatal
from aether.worker.runtimes import adoption, advertise, aheadnode
from aether.worker.runtimes.base import (
    EventSink,
    Instance,
    LogBatch,
    LogLine,
    Observed,
    Release,
    Runtime,
)
from aether.worker.runtimes.confinement import Confinement
from aether.worker.runtimes.health import http_status, is_healthy
from aether.worker.runtimes.layer_cache import LayerCache
from aether.worker.runtimes.layers import release_layer, unused_layers
from aether.worker.runtimes.logfeed import read_batch
from aether.worker.runtimes.logfiles import read_logs
from aether.worker.runtimes.nodes import node_folder
from aether.worker.runtimes.process import (
    AppProcess,
    close_spare,
    ready_spare,
    supervisor_argv,
    supervisor_env,
)
from aether.worker.runtimes.releasedir import prepare
from aether.worker.runtimes.sandbox import Isolation
from aether.worker.runtimes.standby import Standby, entry_of, standby_scratch
from aether.worker.runtimes.startcmd import start_script
from aether.worker.runtimes.supervision import Spec, write_serving
from aether.worker.runtimes.trash import discard, release_folders

if TYPE_CHECKING:
    from aether.blobs import BlobStore

log = logging.getLogger(__name__)
# How often the log feed reads the files: what has come in meanwhile goes in one batch (one
# transaction, one wake-up of each follow), so a chatty app costs a few batches a second, not
# one per write. Each batch has a fixed cost (the file listing, the transaction's statements,
# every follow's wake-up and reads): 250 ms between batches, not 100, makes it 2.5 times
# rarer for ~75 ms more latency to a follower on average (docs/benchmarks.md).
LOG_FEED_POLL_SECS = 0.25
# At most this much of the files goes in one batch: a feed that fell behind catches up in few
# large transactions.
LOG_FEED_BATCH_BYTES = 4 * 1024 * 1024
STOP_GRACE_SECS = 10.0
# Requests already forwarded to the old process get this long to finish before SIGTERM.
DRAIN_SECS = 0.3
# How often a running instance's health path is asked (it answered it to pass its gate).
HEALTH_PROBE_SECS = 10.0
# After a release passed its health gate, the next supervisor launcher starts this much later:
# not beside the cutover. (Tried: 0.05 s, so that a redeploy following at once finds it
# imported; on a busy machine its import then competed with the next CLI instead of the next
# app's start, and end to end it did not help: docs/benchmarks.md.)
SPARE_DELAY_SECS = 0.5
# How long a standby's Node.js may take to start (the app's deploys wait meanwhile).
STANDBY_READY_SECS = 10.0


@dataclass
class _Serving:
    """The release serving an app: its processes (``replicas`` of them; none when scaled
    to 0), in instance order. ``runs``: the deployment whose folder they run and whose name
    they carry — ``deployment_id`` itself, unless a scale kept an earlier one's processes."""

    deployment_id: str
    processes: list[AppProcess]
    folder: Path
    owner: str | None
    runs: str = ""
    release: Release | None = None  # None when adopted, until the loop hands it (resume)

    def __post_init__(self) -> None:
        self.runs = self.runs or self.deployment_id


class LocalRuntime(Runtime):
    name = "local"
    apps_outlive_worker = True

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        blobs: BlobStore | None = None,
        base_env: Mapping[str, str] | None = None,
        stop_grace_secs: float = STOP_GRACE_SECS,
    ) -> None:
        self.settings = settings
        self.apps_dir = settings.data_dir / "apps"
        self.layer_cache = LayerCache(settings.layer_cache_dir or settings.data_dir / "layers")
        self.blobs = blobs
        self.stop_grace_secs = stop_grace_secs
        self.confinement = Confinement(
            settings.sandbox, self.apps_dir, dict(os.environ if base_env is None else base_env)
        )
        self._slot: adoption.Slot | None = None
        self._serving: dict[str, _Serving] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retiring: dict[str, set[asyncio.Task[None]]] = {}
        self.adopted: set[str] = set()  # apps found running at start, before the loop held them
        self.advertise_addr = advertise.advertised(settings.advertise_addr)
        self._reader: ThreadPoolExecutor | None = None
        self._spare_timer: asyncio.TimerHandle | None = None
        self._standbys: dict[str, Standby] = {}  # per app, waiting for its next release
        self._standby_timers: dict[str, asyncio.TimerHandle] = {}
        self._standby_tasks: set[asyncio.Task[None]] = set()
        # per app, the dependency layer whose resolving ahead warned: its standbys skip it
        self._warned: dict[str, object] = {}
        # per app, why its last standby could not be readied: its next release starts cold
        # and its `starting` event says so
        self._no_standby: dict[str, str] = {}

    def use_blob_store(self, blobs: BlobStore) -> None:
        """Attach the blob store once it is open (``serve`` opens it in its lifespan)."""
        self.blobs = blobs

    @property
    def holder(self) -> str:
        """This worker's identity: the same after a restart (see ``adoption``)."""
        if self._slot is None:
            self._slot = adoption.claim_slot(self.apps_dir)
        return self._slot.holder

    @property
    def isolation(self) -> Isolation:
        return self.confinement.isolation

    def capabilities(self) -> dict[str, object]:
        return {
            "runtime": self.name,
            "isolation": self.isolation.as_json(),
            **self.confinement.limits_json(),
        }

    def _lock(self, app_name: str) -> asyncio.Lock:
        return self._locks.setdefault(app_name, asyncio.Lock())

    async def start(self) -> None:
        """Check the sandbox (say plainly when there is none) and adopt the apps an earlier
        worker with this identity left running."""
        isolation = await asyncio.to_thread(lambda: self.isolation)
        if not isolation.isolated:
            if self.settings.sandbox.mode == "bubblewrap":
                raise ConfigError(
                    "AETHER_SANDBOX=bubblewrap but it cannot be used: "
                    + "; ".join(isolation.reasons)
                )
            log.warning(
                "apps are NOT isolated on this host (%s): they can read the data directory and "
                "signal each other; apps of only one owner will run%s",
                "; ".join(isolation.reasons),
                " (AETHER_SANDBOX_ALLOW_SHARED is on: any owner)"
                if self.settings.sandbox.allow_shared
                else "",
            )
        else:
            log.info(
                "apps run in a %s sandbox%s",
                isolation.kind,
                ", one uid each" if isolation.uid_per_app else "",
            )
        if self.advertise_addr == advertise.LOOPBACK:
            log.warning(
                "apps are advertised on %s: only a control plane on this host reaches them "
                "(set AETHER_WORKER_ADVERTISE_ADDR)",
                self.advertise_addr,
            )
        await self._adopt()
        _ready_spare()

    def _ready_spare_later(self, app_name: str | None = None) -> None:
        """After a health gate: the next launcher, and the app's standby (``app_name``),
        SPARE_DELAY_SECS later."""
        loop = asyncio.get_running_loop()
        if self._spare_timer is not None:
            self._spare_timer.cancel()
        # On the loop (a fork and exec: milliseconds), so _close_spare cannot race it.
        self._spare_timer = loop.call_later(SPARE_DELAY_SECS, _ready_spare)
        if app_name is not None and self.settings.standby:
            timer = self._standby_timers.pop(app_name, None)
            if timer is not None:
                timer.cancel()
            self._standby_timers[app_name] = loop.call_later(
                SPARE_DELAY_SECS, lambda: self._track(self._ready_standby(app_name))
            )

    async def _ready_standby(self, app_name: str) -> None:
        """Start the app's standby for its next release, unless one waits, nothing serves
        or the serving release's start command could never run in one."""
        self._standby_timers.pop(app_name, None)
        async with self._lock(app_name):
            serving = self._serving.get(app_name)
            if serving is None or serving.release is None or not serving.processes:
                return
            release, folder = serving.release, serving.folder
            if app_name in self._standbys or release.replicas < 1:
                return
            try:
                entry = entry_of(release.start_command or start_script(folder))
                if entry is None:
                    return
                scratch = standby_scratch(self.apps_dir / app_name)
                base = self._spec(release, folder, 0, scratch)
                ahead = self._resolve_ahead(app_name, folder, entry[0])
                standby = await asyncio.to_thread(
                    Standby.launch,
                    app_name,
                    base,
                    folder,
                    supervisor_argv(),
                    supervisor_env(),
                    ahead,
                )
            except Exception as exc:  # no standby: the next release starts cold
                log.warning("no standby for %s: %s", app_name, exc)
                self._no_standby[app_name] = "no waiting Node.js process could be started"
                return
            # Until its sandbox is made the standby's view names what is in the app's folder
            # now: nothing there may go meanwhile (retiring a release takes this lock).
            if not await standby.ready(STANDBY_READY_SECS):
                await standby.end()
                said = standby.why_ended
                self._no_standby[app_name] = "the waiting Node.js process ended before it was" + (
                    f" ready: {said}" if said else " ready"
                )
                return
            self._no_standby.pop(app_name, None)
            self._standbys[app_name] = standby
        await asyncio.to_thread(standby.reap_launcher)

    def _resolve_ahead(self, app_name: str, folder: Path, entry: str) -> dict | None:
        """What the app's standby resolves ahead: its dependency layer, unless resolving it
        warned before."""
        if not self.settings.standby_resolve:
            return None
        ahead = aheadnode.plan(folder, entry)
        if ahead is None or self._warned.get(app_name) == ahead["layer"]:
            return None
        return ahead

    def release_wanted(self, app_name: str) -> str | None:
        """An app adopted after a restart has no release here until the loop hands it over:
        without one no standby is readied for its next release."""
        serving = self._serving.get(app_name)
        if not self.settings.standby or serving is None or serving.release is not None:
            return None
        return serving.deployment_id if serving.processes else None

    async def resume(self, release: Release) -> None:
        """Take the release an adopted app runs, and ready its standby."""
        app_name = release.app_name
        async with self._lock(app_name):
            serving = self._serving.get(app_name)
            if serving is None or serving.release is not None:
                return
            if serving.deployment_id != release.deployment_id:
                return  # (a deploy came first)
            # Its processes may run an earlier deployment's folder (a scale kept them).
            serving.release = replace(release, deployment_id=serving.runs)
        self._track(self._ready_standby(app_name))

    def _track(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._standby_tasks.add(task)
        task.add_done_callback(self._standby_tasks.discard)
        task.add_done_callback(_log_failure)

    def _end_later(self, standby: Standby | None) -> None:
        if standby is not None and standby.launcher is not None:
            self._track(standby.end())

    async def _end_standbys(self, app_name: str | None = None) -> None:
        """End the standbys (of one app, when given) and wait until they have."""
        names = [app_name] if app_name is not None else list(self._standbys)
        for name in names if app_name is not None else list(self._standby_timers):
            timer = self._standby_timers.pop(name, None)
            if timer is not None:
                timer.cancel()
        ending = [self._standbys.pop(name) for name in names if name in self._standbys]
        await asyncio.gather(*(s.end() for s in ending), return_exceptions=True)
        if app_name is None:
            await asyncio.gather(*self._standby_tasks, return_exceptions=True)
            late = list(self._standbys.values())  # readied by a task that was under way
            self._standbys.clear()
            await asyncio.gather(*(s.end() for s in late), return_exceptions=True)

    def standby_settled(self) -> bool:
        """No standby is about to be readied or ended (tests)."""
        return not self._standby_timers and not self._standby_tasks

    def standby_failure(self, app_name: str) -> str | None:
        """Why the app's last standby could not be readied, if it could not (tests and
        diagnostics)."""
        return self._no_standby.get(app_name)

    def standby_of(self, app_name: str) -> Standby | None:
        """The app's standby, if one waits (tests and diagnostics)."""
        return self._standbys.get(app_name)

    def _ready_spare_now(self) -> None:
        """A deploy begins: make sure a launcher is on its way. One readied after an earlier
        health gate normally waits; when none does (it died, or was taken by a deploy that
        followed its gate within SPARE_DELAY_SECS), one started here imports while the
        release is fetched and extracted instead of after. A pending timer stays: it readies
        the launcher for the deploy after this one."""
        _ready_spare()

    async def _adopt(self) -> None:
        found = await asyncio.to_thread(adoption.running_supervisors, self.apps_dir, self.holder)
        leftovers = []
        for item in sorted(found, key=lambda f: f.record.instance):
            record = item.record
            serving = self._serving.get(record.app_name)
            if item.serving and (serving is None or serving.runs == record.deployment_id):
                process = AppProcess.adopt(item.path, record)
                process.arm()  # in case the last worker died before it could
                if serving is None:
                    folder = self.apps_dir / record.app_name / record.deployment_id
                    serving = _Serving(
                        item.serving, [], folder, record.owner, runs=record.deployment_id
                    )
                    self._serving[record.app_name] = serving
                serving.processes.append(process)
                self.adopted.add(record.app_name)
                log.info(
                    "adopted %s (%s) on port %d", record.app_name, record.deployment_id, record.port
                )
            else:  # an interrupted cutover or rollout: the loop decides again
                leftovers.append(AppProcess.adopt(item.path, record))
        await asyncio.gather(*(p.stop(self.stop_grace_secs) for p in leftovers))

    async def deploy(self, release: Release, record: EventSink) -> Observed:
        async with self._lock(release.app_name):
            self._check_owner(release)
            deadline = time.monotonic() + self.settings.rollout_timeout_secs
            self._ready_spare_now()
            previous = self._serving.get(release.app_name)
            standby = self._standbys.pop(release.app_name, None)
            if previous is not None and _in_place(previous, release):
                if standby is not None and release.replicas > 0:
                    self._standbys[release.app_name] = standby  # for the next release
                else:
                    self._end_later(standby)
                return await self._rescale(release, previous, record, deadline)
            try:
                return await self._roll_out(release, previous, record, deadline, standby)
            finally:
                self._end_later(standby)  # (nothing to end when the release took it)

    async def _roll_out(
        self,
        release: Release,
        previous: _Serving | None,
        record: EventSink,
        deadline: float,
        standby: Standby | None,
    ) -> Observed:
        """A new release (or one whose processes were lost) replaces what serves."""
        folder = await prepare(
            release,
            self.apps_dir,
            self.blobs,
            record,
            require_signature=self.settings.require_signature,
            limits=self.settings.expansion,
            cache=self.layer_cache,
        )
        kept = _survivors(previous, release)
        processes = await self._start_instances(release, folder, record, deadline, kept, standby)
        self._serving[release.app_name] = _Serving(
            release.deployment_id, processes, folder, release.owner, release=release
        )
        write_serving(self.apps_dir, release.app_name, release.deployment_id)
        for process in processes:
            if process not in kept.values():
                process.supervise(record)
        if previous is not None and kept:
            previous.processes = [p for p in previous.processes if p not in kept.values()]
        endpoints = ", ".join(self._endpoint(p) for p in processes)
        await record(
            "healthy", f"answering on {endpoints}" if processes else "scaled to 0: none runs"
        )
        self._ready_spare_later(release.app_name)
        same = previous is not None and previous.deployment_id == release.deployment_id
        if previous is not None and (previous.processes or not same):
            self._retire_later(release.app_name, previous, record)
        endpoint = self._endpoint(processes[0]) if processes else None
        return Observed(release.deployment_id, True, endpoint)

    async def _start_instances(
        self,
        release: Release,
        folder: Path,
        record: EventSink,
        deadline: float,
        kept: dict[int, AppProcess],
        standby: Standby | None = None,
    ) -> list[AppProcess]:
        """The release's processes, started one at a time, each health-gated (those in
        ``kept`` run already; the first in ``standby`` when it fits); on a failure (or
        cancellation) those started here are stopped again."""
        command = release.start_command or start_script(folder)
        started: list[AppProcess] = []
        try:
            for index in range(release.replicas):
                if index in kept:
                    continue
                process, how = await self._in_standby(release, folder, index, command, standby)
                which = f" (instance {index + 1} of {release.replicas})"
                await record(
                    "starting",
                    f"{command} on port {process.port}"
                    + (which if release.replicas > 1 else "")
                    + how,
                )
                await self._start_healthy(process, deadline, spawned=bool(how.startswith(",")))
                started.append(process)
        except BaseException:
            await asyncio.gather(*(p.stop(self.stop_grace_secs) for p in started))
            raise
        return sorted([*kept.values(), *started], key=lambda p: p.instance)

    async def _rescale(
        self, release: Release, previous: _Serving, record: EventSink, deadline: float
    ) -> Observed:
        """A scale: the running processes stay (same pids, never restarted), the missing
        ones start in their folder, each health-gated, and the extra ones leave the router
        before they are drained and stopped."""
        kept = {
            p.instance: p
            for p in previous.processes
            if p.supervisor_alive and p.instance < release.replicas
        }
        extra = [p for p in previous.processes if p not in kept.values()]
        # New processes join the kept ones' generation: same folder, same name in the logs.
        generation = replace(release, deployment_id=previous.runs)
        processes = await self._start_instances(generation, previous.folder, record, deadline, kept)
        self._serving[release.app_name] = _Serving(
            release.deployment_id,
            processes,
            previous.folder,
            release.owner,
            previous.runs,
            release=generation if previous.release is not None else None,
        )
        write_serving(self.apps_dir, release.app_name, release.deployment_id, previous.runs)
        for process in processes:
            if process not in kept.values():
                process.supervise(record)
        before, now = len(previous.processes), len(processes)
        await record("healthy", f"{before} → {now} instances: {self._where(processes)}")
        if len(processes) > len(kept):  # a start used the spare launcher
            self._ready_spare_later()
        if extra:
            leaving = _Serving(previous.deployment_id, extra, previous.folder, previous.owner)
            self._retire_later(release.app_name, leaving, record, scale=True)
        endpoint = self._endpoint(processes[0]) if processes else None
        return Observed(release.deployment_id, True, endpoint)

    def _where(self, processes: list[AppProcess]) -> str:
        if not processes:
            return "none runs"
        return "answering on " + ", ".join(self._endpoint(p) for p in processes)

    def _check_owner(self, release: Release) -> None:
        """Without isolation one host runs the apps of one owner only (unless allowed)."""
        if self.isolation.isolated or self.settings.sandbox.allow_shared:
            return
        others = {s.owner for name, s in self._serving.items() if name != release.app_name}
        if others and others != {release.owner}:
            raise Fatal(
                "this worker runs apps without isolation ("
                + "; ".join(self.isolation.reasons)
                + ") and already runs another owner's apps; install bubblewrap, or set "
                "AETHER_SANDBOX_ALLOW_SHARED=1 to accept that apps can read each other's data"
            )

    async def _in_standby(
        self,
        release: Release,
        folder: Path,
        index: int,
        command: str,
        standby: Standby | None,
    ) -> tuple[AppProcess, str]:
        """The process of instance ``index``, handed to the standby when it fits (then
        running already) and how it started, for the event ('' when it is still to start)."""
        if standby is None or index != 0:
            why_not = self._no_standby.get(release.app_name) if index == 0 else None
            return self._new_process(release, folder, index), (
                f" (cold start: {why_not})" if why_not else ""
            )
        process = self._new_process(release, folder, index, Path(standby.scratch))
        assert process.spec is not None
        entry = entry_of(command)
        why = standby.misfit(process.spec, folder, entry)
        if why is None and entry is not None:
            why = await process.spawn_in(standby, entry)
        if why is None:
            return process, ", started in a waiting Node.js process"
        if why.startswith(aheadnode.WARNED) and standby.ahead is not None:
            self._warned[release.app_name] = standby.ahead["layer"]
        self._end_later(standby)
        return self._new_process(release, folder, index), f" (cold start: {why})"

    def _new_process(
        self, release: Release, folder: Path, instance: int = 0, scratch: Path | None = None
    ) -> AppProcess:
        spec = self._spec(release, folder, instance, scratch)
        return AppProcess(spec, Path(spec.record_path), spec.port, release.health_path)

    def _spec(
        self, release: Release, folder: Path, instance: int = 0, scratch: Path | None = None
    ) -> Spec:
        node_dir = node_folder(
            release.node_major, self.settings.node_binaries, self.confinement.base_env
        )
        try:
            return self.confinement.spec(
                release,
                folder,
                command=release.start_command or start_script(folder),
                holder=self.holder,
                grace_secs=self.stop_grace_secs,
                node_dir=node_dir,
                instance=instance,
                scratch=scratch,
            )
        except (OSError, ValueError, OverflowError) as exc:
            raise Fatal(f"cannot prepare the app's sandbox: {exc}") from exc

    async def _start_healthy(
        self, process: AppProcess, deadline: float, *, spawned: bool = False
    ) -> None:
        """Spawn (unless a standby runs it already) and wait for health; on any failure (or
        cancellation) stop it again."""
        try:
            if not spawned:
                await process.spawn()
            await process.wait_healthy(deadline)
            await self._check_reachable(process)
        except BaseException:
            await process.stop(self.stop_grace_secs)
            raise

    async def _check_reachable(self, process: AppProcess) -> None:
        """Fail the health gate of an app that answers on loopback only: the API replicas
        reach it on the advertised address (checked where that address is this host's)."""
        addr = self.advertise_addr
        if ipaddress.ip_address(addr).is_loopback or not advertise.is_own(addr):
            return
        if not await advertise.answers(addr, process.port):
            raise Fatal(
                f"the app answers on 127.0.0.1:{process.port} but not on {addr}:{process.port},"
                " where the control plane reaches it: listen on every address"
                " (`app.listen(process.env.PORT)`, not `listen(PORT, '127.0.0.1')`)"
            )

    def _retire_later(
        self, app_name: str, previous: _Serving, record: EventSink, *, scale: bool = False
    ) -> None:
        task = asyncio.create_task(self._retire(app_name, previous, record, scale=scale))
        tasks = self._retiring.setdefault(app_name, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)

    async def _retire(
        self, app_name: str, previous: _Serving, record: EventSink, *, scale: bool = False
    ) -> None:
        """Drain and stop a replaced release's processes (``scale``: the instances a scale
        down left out) and delete what no release uses any more."""
        what = (
            f"{len(previous.processes)} instance{'s' if len(previous.processes) != 1 else ''}"
            " no longer wanted"
            if scale
            else f"the previous release {previous.deployment_id}"
        )
        with contextlib.suppress(AetherError):  # events are best effort once the app moved on
            await record("cutover", f"stopping {what}")
        try:
            await asyncio.sleep(DRAIN_SECS)
        finally:  # even when cancelled: a replaced release does not run on
            codes = await asyncio.gather(
                *(p.stop(self.stop_grace_secs) for p in previous.processes)
            )
        with contextlib.suppress(AetherError):
            exited = ", ".join(str(code) for code in codes) or "none ran"
            await record("stopped", f"{what}: exited ({exited})")
        async with self._lock(app_name):  # not while a deploy prepares its folder
            app_dir = self.apps_dir / app_name
            serving = self._serving.get(app_name)
            if serving is None or serving.folder != previous.folder:
                discard(app_dir, [previous.folder])
            in_use = {release_layer(folder) for folder in release_folders(app_dir)}
            discard(app_dir, unused_layers(app_dir / "layers", {x for x in in_use if x}))
        await self.sweep_layers()

    async def sweep_layers(self) -> list[str]:
        """Remove the host's cached layers no release folder uses (of any app or worker)."""
        return await asyncio.to_thread(self.layer_cache.sweep)

    async def _wait_retired(self, app_name: str | None = None) -> None:
        names = [app_name] if app_name is not None else list(self._retiring)
        tasks = [task for name in names for task in self._retiring.get(name, ())]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def observe(self, app_name: str) -> Observed | None:
        self.adopted.discard(app_name)  # the loop holds it now
        serving = self._serving.get(app_name)
        if serving is None:
            return None
        lost = [p for p in serving.processes if not p.supervisor_alive]
        if lost:  # killed: nothing restarts them; the loop starts the release again, and
            # the survivors serve until it is up
            for process in lost:
                await process.detach()
            serving.processes = [p for p in serving.processes if p not in lost]
            if not serving.processes:
                self._serving.pop(app_name, None)
            return None
        alive = all(p.alive for p in serving.processes)
        endpoint = self._endpoint(serving.processes[0]) if serving.processes else None
        return Observed(serving.deployment_id, alive, endpoint)

    async def instances(self, app_name: str) -> list[Instance] | None:
        serving = self._serving.get(app_name)
        if serving is None:
            return []
        return list(
            await asyncio.gather(
                *(
                    _instance(serving.deployment_id, serving.runs, p, self._endpoint(p))
                    for p in serving.processes
                )
            )
        )

    def _endpoint(self, process: AppProcess) -> str:
        """Where every API replica reaches the app: the advertised address, not loopback."""
        return advertise.endpoint(self.advertise_addr, process.port)

    async def remove(self, app_name: str) -> None:
        """Stop the app's processes (also any an earlier worker left) and delete its folder."""
        self.adopted.discard(app_name)
        self._no_standby.pop(app_name, None)
        self._warned.pop(app_name, None)
        await self._wait_retired(app_name)  # before the lock: retiring takes it to clean up
        async with self._lock(app_name):
            await self._end_standbys(app_name)
            serving = self._serving.pop(app_name, None)
            if serving is not None:
                await _stop_all(serving.processes, self.stop_grace_secs)
            await self._stop_recorded(app_name)
            await asyncio.to_thread(shutil.rmtree, self.apps_dir / app_name, True)
        await self.sweep_layers()

    async def release_app(self, app_name: str) -> None:
        """Stop this worker's processes of an app another worker took over (its folder,
        which that worker may share, stays)."""
        async with self._lock(app_name):
            await self._end_standbys(app_name)
            serving = self._serving.pop(app_name, None)
            if serving is not None:
                await _stop_all(serving.processes, self.stop_grace_secs)
            await self._stop_recorded(app_name, self.holder)

    async def _stop_recorded(self, app_name: str | None = None, holder: str | None = None) -> None:
        """Stop supervisors found in run records (of one app, of one holder, when given)."""
        found = await asyncio.to_thread(adoption.running_supervisors, self.apps_dir, holder)
        doomed = [f for f in found if app_name in (None, f.record.app_name)]
        await asyncio.gather(
            *(AppProcess.adopt(f.path, f.record).stop(self.stop_grace_secs) for f in doomed)
        )

    def logs(
        self,
        app_name: str,
        *,
        tail: int | None = None,
        since: str | None = None,
        follow: bool = False,
        cursor: str | None = None,
        container: str | None = None,
    ) -> AsyncIterator[LogLine]:
        if container not in (None, "app"):
            raise BadRequest(
                f"container={container!r}: the local runtime runs one process per app ('app')"
            )
        logs_dir = self.apps_dir / app_name / "logs"
        return read_logs(logs_dir, tail=tail, since=since, follow=follow, cursor=cursor)

    def log_source(self, app_name: str) -> str:
        return f"local:{socket.gethostname()}:{self.apps_dir}/{app_name}"

    async def log_feed(self, app_name: str, position: str | None) -> AsyncIterator[LogBatch]:
        logs_dir = self.apps_dir / app_name / "logs"
        instance = socket.gethostname()
        max_lag = min(
            self.settings.log_ship_max_lag_bytes, self.settings.sandbox.log_max_bytes // 2
        )
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            batch = await loop.run_in_executor(
                self._log_reader(),
                functools.partial(
                    read_batch,
                    logs_dir,
                    position,
                    max_bytes=LOG_FEED_BATCH_BYTES,
                    max_lag_bytes=max_lag,
                    instance=instance,
                ),
            )
            if batch.lines or batch.dropped or (batch.position and batch.position != position):
                position = batch.position
                yield LogBatch(batch.lines, batch.position, batch.dropped)
            if not batch.more:  # caught up: the next batch once more has come in
                await asyncio.sleep(max(started + LOG_FEED_POLL_SECS - loop.time(), 0))

    def _log_reader(self) -> ThreadPoolExecutor:
        """The thread that reads and parses log files for shipping, at the apps' own CPU
        priority: shipping their output never outranks the apps that write it."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="aether-log-reader",
                initializer=_lower_priority,
                initargs=(self.settings.sandbox.nice,),
            )
        return self._reader

    def process_of(self, app_name: str) -> AppProcess | None:
        """The (first) process serving the app (tests and diagnostics)."""
        serving = self._serving.get(app_name)
        return serving.processes[0] if serving and serving.processes else None

    def processes_of(self, app_name: str) -> list[AppProcess]:
        serving = self._serving.get(app_name)
        return list(serving.processes) if serving else []

    async def stop(self) -> None:
        """Let go of the apps: they keep running under their supervisors for the next worker.
        A cutover in progress finishes (the replaced release stops)."""
        serving, self._serving = list(self._serving.values()), {}
        await asyncio.gather(
            *(p.detach() for s in serving for p in s.processes),
            self._wait_retired(),
            self._end_standbys(),  # standbys are no apps: they end with the worker
            return_exceptions=True,
        )
        await self._close_spare()
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)
            self._reader = None

    async def stop_apps(self) -> None:
        """Stop every app process started from this data dir, by any worker on this host."""
        serving, self._serving = list(self._serving.values()), {}
        await asyncio.gather(
            *(p.stop(self.stop_grace_secs) for s in serving for p in s.processes),
            self._wait_retired(),
            self._end_standbys(),
        )
        await self._stop_recorded()
        await self._close_spare()

    async def _close_spare(self) -> None:
        if self._spare_timer is not None:
            self._spare_timer.cancel()
            self._spare_timer = None
        await asyncio.to_thread(close_spare)


def _ready_spare() -> None:
    try:
        ready_spare()
    except AetherError as exc:  # the next start launches its own and reports the cause
        log.warning("%s", exc)


def _lower_priority(nice: int) -> None:
    with contextlib.suppress(OSError):  # (Linux: a thread's own nice value)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _in_place(previous: _Serving, release: Release) -> bool:
    """Whether the release keeps the serving processes: a scale of them, or their own
    deployment started again after one was lost while they run an earlier one's folder."""
    if release.scales_from == previous.deployment_id:
        return True
    return release.deployment_id == previous.deployment_id != previous.runs


def _survivors(previous: _Serving | None, release: Release) -> dict[int, AppProcess]:
    """When the release runs already (started again after one of its processes was lost),
    its live processes by instance: they keep serving, only the missing ones start."""
    if previous is None or previous.deployment_id != release.deployment_id:
        return {}
    alive = {p.instance: p for p in previous.processes if p.supervisor_alive}
    return {i: p for i, p in alive.items() if i < release.replicas}


async def _stop_all(processes: list[AppProcess], grace_secs: float) -> None:
    await asyncio.gather(*(p.stop(grace_secs) for p in processes))


_STATES = {"running": "running", "backoff": "restarting", "starting": "starting"}


async def _instance(deployment_id: str, runs: str, process: AppProcess, endpoint: str) -> Instance:
    """What ``ps`` shows of one process. A process its supervisor reports running is
    healthy; with a health path, that path is also asked every HEALTH_PROBE_SECS (without
    one, asking ``/`` would fill the app's log with the worker's requests)."""
    alive = process.alive  # (reads the supervisor's record again)
    record = process.record
    state = "lost" if not process.supervisor_alive else "stopped"
    if record is not None and process.supervisor_alive:
        state = _STATES.get(record.state, record.state)
    health = "healthy" if alive else ("unknown" if state == "starting" else "unhealthy")
    if alive and process.health_path:
        health = await _probed_health(process)
    return Instance(
        id=f"{runs[:8]}-{process.instance + 1}",  # the same for as long as it runs
        deployment_id=deployment_id,
        state=state,
        health=health,
        restarts=record.restarts if record else 0,
        started_at=(record.started_at or None) if record else None,
        host=socket.gethostname(),
        endpoint=endpoint,
    )


async def _probed_health(process: AppProcess) -> str:
    now = time.monotonic()
    if process.probed is None or now - process.probed[0] >= HEALTH_PROBE_SECS:
        status = await http_status(process.port, process.health_path or "/", timeout=1.0)
        healthy = is_healthy(status, process.health_path)
        process.probed = (now, "healthy" if healthy else "unhealthy")
    return process.probed[1]


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("stopping a previous release failed: %s", task.exception())

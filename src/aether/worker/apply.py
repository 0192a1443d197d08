"""Applying plan actions: the store transitions, the events, and the runtime calls.

The runtime's ``healthy`` event is the cutover point: the deployment is marked running with the
endpoint the runtime now observes (older ones superseded in the same transaction) before the
runtime stops the previous release, so the Host-header proxy switches without a gap.

A restart (a release that served before: a restarted worker, a restore after a newer release
failed) is never given up on for a transient fault — failing it would leave the app with no
release to run — so it is retried with a growing delay until the fault clears. A workload kept
because every release failed is reported once per deployment, as a ``kept`` event and a log
line; nothing here ever removes a workload (deleting the app does, in the loop).

The release's environment (its config version's vars and one-off overrides) is opened here,
with the worker's key ring, and handed to the runtime in memory only. Events and failure
reasons quote the app's output; any of its values found there is masked before it is
recorded, since readers see events.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from typing import Any, Protocol

from aether.blobs.storage_keys import MANIFEST_NAME
from aether.errors import AetherError, NetworkError, ServiceUnavailable
from aether.pack.artifact_manifest import SBOM
from aether.sealing import KeyRing, key_source
from aether.settings import WorkerSettings
from aether.store import artifact_layers, rollouts
from aether.store.database import Database, Row
from aether.worker.outcomes import Retry
from aether.worker.plan import Action, Deploy, KeepWorkload, MarkRunning, Supersede
from aether.worker.runtimes.base import EventSink, LayerSource, Release, Runtime

log = logging.getLogger("aether.worker")

PULL_TOKEN_TTL_SECS = 30 * 86400  # a pod restarted weeks later can still fetch its artifact
TRANSIENT = (Retry, NetworkError, ServiceUnavailable)
# A restart retries transient faults for good, at a delay that grows up to this.
RESTART_RETRY_MAX_SECS = 30.0


class RetryBook(Protocol):
    first_retry: dict[str, float]
    noted: set[str]  # deployments whose kept workload was reported by this worker


MASK = "[config value]"
MAX_MASKERS = 256
MIN_MASKED_CHARS = 4  # shorter values ("1", "on") are everywhere in output; masking them lies


class Masker:
    """Replaces a release's config values in text the app wrote (events, failure reasons)."""

    def __init__(self, values: Iterable[str]) -> None:
        found = sorted({v for v in values if len(v) >= MIN_MASKED_CHARS}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, found))) if found else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text


class Applier:
    def __init__(
        self,
        db: Database,
        runtime: Runtime,
        settings: WorkerSettings,
        *,
        public_url: str | None = None,
        keyring: KeyRing | None = None,
        holder: str | None = None,
    ) -> None:
        self.db = db
        self.runtime = runtime
        self.settings = settings
        self.public_url = public_url
        self.holder = holder  # the worker, named on the instance rows it writes
        self._keyring = keyring
        self._masks: dict[str, Masker] = {}  # deployment id → its values' masker

    @property
    def keyring(self) -> KeyRing:
        """The given ring, else one from the settings (only read when a release has values)."""
        if self._keyring is None:
            secrets = self.settings.secrets
            self._keyring = KeyRing(key_source(secrets.keys, secrets.key_file, create=False))
        return self._keyring

    async def apply(self, app_name: str, action: Action, *, slot: RetryBook) -> None:
        if isinstance(action, Deploy):
            await self._deploy(app_name, action, slot)
        elif isinstance(action, MarkRunning):
            await self.mark_running(action.deployment_id, app_name)
        elif isinstance(action, Supersede):
            await rollouts.supersede(self.db, action.deployment_ids)
            for old in action.deployment_ids:
                await rollouts.record_event(self.db, old, "superseded", "a newer deployment runs")
        elif isinstance(action, KeepWorkload):
            await self._note_kept(app_name, action, slot)

    async def _deploy(self, app_name: str, action: Deploy, slot: RetryBook) -> None:
        row = await rollouts.release_row(self.db, action.deployment_id)
        if row is None:
            return
        deployment_id = action.deployment_id
        if action.restores:
            await rollouts.record_event(
                self.db, deployment_id, "restoring", f"deployment {action.restores} failed"
            )
        elif action.restart:
            await rollouts.record_event(self.db, deployment_id, "restarting", "not running here")
        elif await rollouts.mark_deploying(self.db, deployment_id):
            await rollouts.record_event(
                self.db, deployment_id, "deploying", f"on the {self.runtime.name} runtime"
            )
        try:
            release = await self.release(row)
            self._remember_mask(deployment_id, Masker(release.env.values()))
            observed = await self.runtime.deploy(release, self.sink(deployment_id, app_name))
        except TRANSIENT as exc:
            await self._retry_or_fail(action, exc, slot)
            return
        except AetherError as exc:
            await self.fail(deployment_id, exc.message)
            return
        except Exception as exc:  # a bug must fail the rollout visibly, not loop forever
            log.exception("rollout of %s crashed", deployment_id)
            await self.fail(deployment_id, f"internal error: {type(exc).__name__}: {exc}")
            return
        slot.first_retry.pop(deployment_id, None)
        await self.mark_running(deployment_id, app_name, endpoint=observed.endpoint)

    async def _retry_or_fail(self, action: Deploy, exc: AetherError, slot: RetryBook) -> None:
        deployment_id = action.deployment_id
        first = slot.first_retry.setdefault(deployment_id, time.monotonic())
        waited = time.monotonic() - first
        timeout = self.settings.rollout_timeout_secs
        if waited >= timeout and not action.restart:
            slot.first_retry.pop(deployment_id, None)
            await self.fail(deployment_id, f"not healthy within {timeout:g}s: {exc.message}")
            return
        delay = exc.delay if isinstance(exc, Retry) else 2.0
        if action.restart:
            delay = min(RESTART_RETRY_MAX_SECS, max(delay, waited / 4))
        message = f"{exc.message} (again in {delay:g}s)"
        await rollouts.record_event(self.db, deployment_id, "retrying", message)
        raise Retry(message, delay=delay)  # the loop tries the app again after the delay

    async def _note_kept(self, app_name: str, action: KeepWorkload, slot: RetryBook) -> None:
        """Say once (per deployment, across workers) that a workload is kept, and why."""
        key = action.deployment_id or ""
        if key in slot.noted:
            return
        slot.noted.add(key)
        what = f"release {action.serving}" if action.serving else "its last workload"
        message = (
            f"every release of {app_name} failed; the {self.runtime.name} runtime still runs "
            f"{what} and it is left as it is (deploy a release that works, or delete the app)"
        )
        log.warning("%s", message)
        deployment_id = action.deployment_id
        if deployment_id and not await rollouts.has_event(self.db, deployment_id, "kept"):
            await rollouts.record_event(self.db, deployment_id, "kept", message)

    async def fail(self, deployment_id: str, reason: str) -> None:
        reason = self._mask(deployment_id, reason)
        log.warning("deployment %s failed: %s", deployment_id, reason)
        await rollouts.mark_failed(self.db, deployment_id, reason)
        await rollouts.record_event(self.db, deployment_id, "failed", reason)

    def _remember_mask(self, deployment_id: str, masker: Masker) -> None:
        self._masks.pop(deployment_id, None)
        self._masks[deployment_id] = masker
        while len(self._masks) > MAX_MASKERS:  # the oldest releases are long replaced
            self._masks.pop(next(iter(self._masks)))

    def _mask(self, deployment_id: str, text: str) -> str:
        masker = self._masks.get(deployment_id)
        return masker(text) if masker is not None else text

    async def mark_running(
        self, deployment_id: str, app_name: str, *, endpoint: str | None = None
    ) -> None:
        if endpoint is None:
            observed = await self.runtime.observe(app_name)
            if observed is not None and observed.deployment_id == deployment_id:
                endpoint = observed.endpoint
        status = await rollouts.deployment_status(self.db, deployment_id)
        # At the cutover the instances it runs are recorded with it (all of a scale's).
        running = await self.instance_rows(app_name) if status != "running" else None
        instances_of = (self.holder, running) if self.holder and running is not None else None
        superseded = await rollouts.mark_running(
            self.db, deployment_id, endpoint, instances_of=instances_of
        )
        if status != "running":
            await rollouts.record_event(self.db, deployment_id, "running", endpoint or "")
        for old in superseded:
            await rollouts.record_event(self.db, old, "superseded", f"replaced by {deployment_id}")

    async def resume(self, app_name: str) -> None:
        """Hand the runtime the release of an app it adopted, when it wants it (a local
        runtime readies the app's standby with it); a failure only means none is readied."""
        deployment_id = self.runtime.release_wanted(app_name)
        if deployment_id is None:
            return
        try:
            row = await rollouts.release_row(self.db, deployment_id)
            if row is not None:
                await self.runtime.resume(await self.release(row))
        except AetherError as exc:
            log.debug("no release for the adopted %s yet: %s", app_name, exc.message)

    async def instance_rows(self, app_name: str) -> list[dict[str, Any]] | None:
        """The app's instances as the runtime sees them now, as rows to record."""
        found = await self.runtime.instances(app_name)
        return None if found is None else [dict(vars(i)) for i in found]

    def sink(self, deployment_id: str, app_name: str) -> EventSink:
        """The runtime's event callback; ``healthy`` also marks the deployment running."""

        async def record(phase: str, message: str = "") -> None:
            message = self._mask(deployment_id, message)
            await rollouts.record_event(self.db, deployment_id, phase, message)
            if phase == "healthy":
                await self.mark_running(deployment_id, app_name)

        return record

    def environment(self, row: Row) -> dict[str, str]:
        """The release's config vars, then its one-off overrides (which win), opened."""
        if not row["config"] and not row["overrides"]:
            return {}
        ring, app_id = self.keyring, row["app_id"]
        return {
            **ring.unseal_env(row["config"], app_id=app_id),
            **ring.unseal_env(row["overrides"], app_id=app_id),
        }

    async def release(self, row: Row) -> Release:
        return Release(
            app_name=row["app_name"],
            deployment_id=row["id"],
            digest=row["digest"],
            storage_key=row["storage_key"],
            compression=row["compression"] or "zstd",
            start_command=row["start_command"] or None,
            node_major=int(row["node_version"]) if row.get("node_version") else None,
            env=self.environment(row),
            replicas=1 if row["replicas"] is None else int(row["replicas"]),
            health_path=row["health_path"] or None,
            signature=row["signature"] or None,
            public_keys=tuple(row["public_keys"]),
            api_url=self.public_url,
            pull_token=await self._pull_token(row["id"]),
            owner=row.get("app_owner"),
            layers=await self._layers(row),
            scales_from=await rollouts.scaled_from(self.db, row["id"]),
        )

    async def _layers(self, row: Row) -> tuple[LayerSource, ...]:
        """The layers of a layered artifact (whose object is its manifest), else ()."""
        if not str(row["storage_key"] or "").endswith("/" + MANIFEST_NAME):
            return ()
        rows = await artifact_layers.layers_of(self.db, row["digest"])
        return tuple(
            LayerSource(r["name"], r["digest"], r["storage_key"], r["compression"] or "zstd")
            for r in rows
            if r["name"] != SBOM  # stored beside the layers, never fetched by a worker
        )

    async def _pull_token(self, deployment_id: str) -> Any:
        if self.runtime.name != "kubernetes":
            return None
        from aether.store.tokens import create_pull_token

        return await create_pull_token(
            self.db, deployment_id=deployment_id, ttl_secs=PULL_TOKEN_TTL_SECS
        )

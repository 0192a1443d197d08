"""Idempotent create-or-update of aether-owned objects.

``apply`` reads the object, creates it when missing, leaves it alone when it already holds
everything the manifest says (the API server adds defaults, so "holds" means the manifest is
a subset of the live object), and otherwise replaces it (PUT) with the ``resourceVersion`` it
read. A 409 — the Deployment controller writes status between our read and our write, several
times a rollout — means: read again and retry, a bounded number of times with a short growing
pause; past that the conflict is a transient error the worker retries later. Objects that lack
the owner labels are never touched: they belong to someone else.

Why GET/PUT and not server-side apply: aether owns every field it writes on objects only it
manages (the owner labels), so field-level ownership buys little; a converged object costs one
GET and no write; the read is needed anyway for the owner check; and PUT's semantics (replace,
guarded by ``resourceVersion``) are what the test API server (kmock) can emulate faithfully,
where server-side apply's merge rules could only be faked. The price: a PUT drops fields other
writers added to these objects (the controller re-adds its revision annotation).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aether.kube.client import SERVICES, KubeClient, kind_of
from aether.kube.errors import KubeConflict, KubeError

ATTEMPTS = 5
CONFLICT_PAUSE_SECS = 0.05  # doubled after each conflict: 0.05, 0.1, 0.2, 0.4


class KubeNotOwned(KubeError):
    """An object with the name aether wants exists but is not aether's."""


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did to one object: created, updated or unchanged."""

    kind: str
    name: str
    action: str
    object: dict[str, Any]

    def describe(self) -> str:
        return f"{self.kind} {self.name} {self.action}"


async def apply(
    client: KubeClient, manifest: Mapping[str, Any], *, owner_labels: Mapping[str, str]
) -> Applied:
    kind = kind_of(manifest)
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    for attempt in range(ATTEMPTS):
        if attempt:
            await asyncio.sleep(CONFLICT_PAUSE_SECS * 2 ** (attempt - 1))
        current = await client.get(kind, namespace, name)
        try:
            if current is None:
                created = await client.create(manifest)
                return Applied(kind.kind, name, "created", created)
            ensure_owned(current, owner_labels)
            if holds(current, manifest):
                return Applied(kind.kind, name, "unchanged", current)
            replaced = await client.replace(_replacement(manifest, current))
            return Applied(kind.kind, name, "updated", replaced)
        except KubeConflict:
            continue  # someone else wrote in between: read the new state and try again
    raise KubeConflict(
        f"{kind.kind} {namespace}/{name} kept changing while aether updated it "
        f"({ATTEMPTS} attempts); is another controller managing it?"
    )


def ensure_owned(current: Mapping[str, Any], owner_labels: Mapping[str, str]) -> None:
    labels = (current.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in owner_labels.items()):
        metadata = current.get("metadata") or {}
        marker = ", ".join(f"{key}={value}" for key, value in owner_labels.items())
        raise KubeNotOwned(
            f"{current.get('kind', 'object')} {metadata.get('namespace')}/{metadata.get('name')} "
            f"exists but is not managed by aether (no label {marker}); delete it or use "
            "another app name"
        )


def holds(live: Any, wanted: Any) -> bool:
    """Whether ``live`` contains everything in ``wanted`` (dicts may have extra keys)."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and holds(live[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(holds(item, value) for item, value in zip(live, wanted, strict=True))
        )
    return bool(live == wanted)


def _replacement(manifest: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    desired = copy.deepcopy(dict(manifest))
    desired["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
    if kind_of(manifest) is SERVICES:
        # The cluster IP is assigned by the server and may not change on a replace.
        live_spec = current.get("spec") or {}
        for field in ("clusterIP", "clusterIPs"):
            if field in live_spec:
                desired["spec"][field] = live_spec[field]
    return desired

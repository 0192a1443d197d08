"""Following a deployment until it is ``running`` or ``failed``.

The client asks for the deployment's new events (``GET /deployments/{id}/events?after=``) and
its status (``GET /deployments/{id}``) in a loop whose interval grows from a quarter second to
two seconds. Status first, then events: when the status is terminal, every event up to it has
been printed. A ``failed`` (or ``superseded`` before running) rollout raises
:class:`RolloutFailed` (exit 20) with the reason from the deployment or its last event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aether.client.api import ApiClient
from aether.errors import InternalError
from aether.models import TERMINAL_STATUSES

EventCallback = Callable[[dict[str, Any]], None]
FIRST_POLL_SECS = 0.25
MAX_POLL_SECS = 2.0


class RolloutFailed(InternalError):
    """The worker could not bring the deployment up (exit 20); the message carries its reason."""

    code = "rollout_failed"


class RolloutTimeout(InternalError):
    """The deployment was still in progress when the client stopped waiting (exit 20)."""

    code = "rollout_timeout"


def follow_deployment(
    api: ApiClient,
    deployment_id: str,
    *,
    on_event: EventCallback | None = None,
    timeout_secs: float = 180.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Report events until the deployment is terminal; return it when it is ``running``."""
    deadline = time.monotonic() + timeout_secs
    after: int | str | None = None
    last_event: dict[str, Any] | None = None
    delay = FIRST_POLL_SECS
    while True:
        deployment = api.get(f"/deployments/{deployment_id}")
        for event in new_events(api, deployment_id, after):
            after, last_event = event.get("id", after), event
            if on_event is not None:
                on_event(event)
        status = deployment.get("status")
        if status in TERMINAL_STATUSES:
            return finished(deployment, last_event)
        if time.monotonic() >= deadline:
            raise RolloutTimeout(
                f"deployment {deployment_id} is still {status} after {timeout_secs:.0f} s; "
                f"check it later with `aether list --app {deployment.get('app_name', 'APP')}`"
            )
        sleep(delay)
        delay = min(delay * 1.5, MAX_POLL_SECS)


def new_events(api: ApiClient, deployment_id: str, after: int | str | None) -> list[dict[str, Any]]:
    listing = api.get(f"/deployments/{deployment_id}/events", after=after)
    events = listing.get("events", [])
    return [event for event in events if isinstance(event, dict)]


def finished(deployment: dict[str, Any], last_event: dict[str, Any] | None) -> dict[str, Any]:
    """Return a running deployment; raise with the best reason for any other terminal one."""
    status = deployment.get("status")
    if status == "running":
        return deployment
    reason = deployment.get("failure_reason") or (last_event or {}).get("message") or ""
    if status == "superseded":
        reason = reason or "a newer deployment replaced it before it was running"
    raise RolloutFailed(
        f"deployment {deployment.get('id')} of {deployment.get('app_name')} {status}: "
        f"{reason or 'no reason recorded'}"
    )

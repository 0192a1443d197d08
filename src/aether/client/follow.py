"""Following a deployment until it is ``running`` or ``failed``.

The client streams ``GET /deployments/{id}/events?follow=true&outcome=true&after=<last id>``
(NDJSON; the server ends the stream once the deployment is terminal and every event is sent,
with the deployment itself as the last line); a server that sends no such line is asked
``GET /deployments/{id}`` for the outcome. A stream that drops or stays silent past the read
timeout is simply reopened after the last event seen, so no event is shown twice. A ``failed``
(or ``superseded`` before running) rollout raises :class:`RolloutFailed` (exit 20) with the
reason from the deployment or its last event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import cast

from aether.client.api import ApiClient
from aether.errors import InternalError, NetworkError
from aether.models import TERMINAL_STATUSES, Deployment, Event

EventCallback = Callable[[Event], None]
FIRST_POLL_SECS = 0.25
MAX_POLL_SECS = 2.0
STREAM_READ_SECS = 30.0


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
) -> Deployment:
    """Report events until the deployment is terminal; return it when it is ``running``."""
    deadline = time.monotonic() + timeout_secs
    after: int | None = None
    last_event: Event | None = None
    delay = FIRST_POLL_SECS
    while True:
        remaining = max(deadline - time.monotonic(), 1.0)
        outcome: list[Deployment] = []
        try:
            for event in _event_stream(
                api, deployment_id, after, min(remaining, STREAM_READ_SECS), outcome
            ):
                after, last_event = event.get("id", after), event
                if on_event is not None:
                    on_event(event)
        except NetworkError:
            pass  # dropped or silent stream: the status check below decides what next
        if outcome and outcome[-1].get("status") in TERMINAL_STATUSES:
            return finished(outcome[-1], last_event)
        deployment = cast(Deployment, api.get(f"/deployments/{deployment_id}"))
        if deployment.get("status") in TERMINAL_STATUSES:
            return finished(deployment, last_event)
        if time.monotonic() >= deadline:
            still = deployment.get("status")
            hint = (
                f"it stays pending and starts when a worker takes it; stop it with "
                f"`aether deploy --cancel {deployment_id}`"
                if still == "pending"
                else f"check it with `aether list --app {deployment.get('app_name', 'APP')}`"
            )
            raise RolloutTimeout(
                f"deployment {deployment_id} is still {still} after {timeout_secs:.0f} s; {hint}"
            )
        sleep(delay)
        delay = min(delay * 1.5, MAX_POLL_SECS)


def _event_stream(
    api: ApiClient,
    deployment_id: str,
    after: int | None,
    read_timeout: float,
    outcome: list[Deployment],
) -> Iterator[Event]:
    """The events; the stream's closing ``{"deployment": …}`` line goes to ``outcome``."""
    params = {"follow": True, "outcome": True, "after": after}
    for item in api.stream_lines(
        f"/deployments/{deployment_id}/events", params, read_timeout=read_timeout
    ):
        if isinstance(item.get("deployment"), dict):
            outcome.append(cast(Deployment, item["deployment"]))
            continue
        # A server without streaming answers one JSON object {"events": [...]}.
        batch = item["events"] if isinstance(item.get("events"), list) else [item]
        yield from (cast(Event, event) for event in batch if isinstance(event, dict))


def finished(deployment: Deployment, last_event: Event | None) -> Deployment:
    """Return a running deployment; raise with the best reason for any other terminal one."""
    status = deployment.get("status")
    if status == "running":
        return deployment
    last_message = last_event.get("message") if last_event is not None else None
    reason = deployment.get("failure_reason") or last_message or ""
    if status == "superseded":
        reason = reason or "a newer deployment replaced it before it was running"
    raise RolloutFailed(
        f"deployment {deployment.get('id')} of {deployment.get('app_name')} {status}: "
        f"{reason or 'no reason recorded'}"
    )

"""What ``aether deploy`` measured, for the dashboard (:class:`aether.models.DeployReport`).

A first report goes with ``POST /deployments``; the final one (with ``rollout`` and ``total``)
is ``PUT /deployments/{id}/report``, sent as soon as the rollout's ``running`` event arrives:
on a connection of its own, while the stream's last lines (the previous release's cutover,
the outcome) still come, and its answer read once the rollout is followed. A deploy that
happened is never failed by its report: a refusal is only logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aether.client.api import ApiClient
from aether.client.follow import EventCallback
from aether.errors import AetherError
from aether.models import REPORT_PHASES, DeployReport, Event

log = logging.getLogger(__name__)


def deploy_report(result: Mapping[str, Any], timings: Mapping[str, float]) -> DeployReport:
    """The report of this run so far: the reported phases only (``stage`` is a part of
    ``pack``)."""
    uploaded = int(result.get("uploaded_bytes") or 0)
    size = int(result.get("size_bytes") or 0)
    known = (*REPORT_PHASES, "total")
    return {
        "timings_ms": {p: v for p, v in timings.items() if p in known and v >= 0},
        "uploaded_bytes": uploaded,
        "skipped_bytes": max(size - uploaded, 0),
    }


class FinalReport:
    """The final ``PUT /deployments/{id}/report`` of one deploy."""

    def __init__(self, api: ApiClient, started: float) -> None:
        self._api, self._started = api, started
        self._path: str | None = None
        self._result: Mapping[str, Any] = {}
        self._timings: dict[str, float] = {}
        self._rollout_started = 0.0
        self._answer: Callable[[], None] | None = None

    @property
    def sent(self) -> bool:
        return self._answer is not None

    def arm(
        self,
        deployment_id: str,
        result: Mapping[str, Any],
        timings: dict[str, float],
        rollout_started: float,
    ) -> None:
        """This run's deployment (not an unchanged older one), its result so far (the bytes
        uploaded) and the timings the report takes, rollout timed from ``rollout_started``."""
        self._path = f"/deployments/{deployment_id}/report"
        self._result, self._timings, self._rollout_started = result, timings, rollout_started

    def watch(self, on_event: EventCallback | None) -> EventCallback:
        """``on_event``, and the report sent once the rollout is ``running``: its rollout and
        total end there."""

        def seen(event: Event) -> None:
            if on_event is not None:
                on_event(event)
            if event.get("phase") == "running" and self._path is not None and not self.sent:
                self._timings["rollout"] = ms_since(self._rollout_started)
                self._timings["total"] = ms_since(self._started)
                self._send()

        return seen

    def finish(self) -> None:
        """Send the report now unless it went early (the timings as they stand), and read
        the answer."""
        if self._path is None:
            return
        if not self.sent:
            self._send()
        try:
            assert self._answer is not None
            self._answer()
        except AetherError as exc:
            log.debug("the deployment's timings were not recorded: %s", exc)

    def _send(self) -> None:
        assert self._path is not None
        try:
            report = dict(deploy_report(self._result, self._timings))
            self._answer = self._api.put_later(self._path, report)
        except AetherError as exc:
            log.debug("the deployment's timings were not sent: %s", exc)
            self._answer = _nothing


def _nothing() -> None:
    return None


def ms_since(clock: float) -> float:
    """Milliseconds since the ``time.monotonic()`` reading ``clock``, one decimal."""
    return round((time.monotonic() - clock) * 1000, 1)

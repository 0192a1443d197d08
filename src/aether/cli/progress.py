"""Progress on stderr: a redrawn bar on a terminal, plain phase lines otherwise.

The client and the packer report ``(phase, done, total)``; this is the only place that draws
anything. On a terminal, byte phases show a bar with bytes, rate and ETA (redrawn at most ten
times a second); elsewhere (CI logs, pipes) each phase prints one line when it starts and one
when it ends, so logs stay readable. Nothing is ever written to stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # annotations only: `aether pack` draws progress without the wire models
    from aether.client.api import ApiClient
    from aether.models import Deployment, Event

BYTE_PHASES = frozenset({"pack", "upload", "download"})
BAR_WIDTH = 24
REDRAW_SECS = 0.1


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover - the loop returns


def human_secs(secs: float) -> str:
    if secs < 60:
        return f"{secs:.0f}s"
    return f"{int(secs // 60)}m{int(secs % 60):02d}s"


def render_bar(phase: str, done: int, total: int | None, elapsed: float) -> str:
    """One line: ``upload [#####.....] 45% 12.3 MB/27.0 MB 8.1 MB/s ETA 2s``."""
    is_bytes = phase in BYTE_PHASES
    amount = human_bytes(done) if is_bytes else str(done)
    rate = done / elapsed if elapsed > 0 else 0.0
    rate_text = f"{human_bytes(rate)}/s" if is_bytes else f"{rate:.0f}/s"
    if not total:
        return f"{phase:<8} {amount} {rate_text} {human_secs(elapsed)}"
    fraction = min(max(done / total, 0.0), 1.0)
    filled = int(BAR_WIDTH * fraction)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    total_text = human_bytes(total) if is_bytes else str(total)
    eta = (total - done) / rate if rate > 0 else 0.0
    return (
        f"{phase:<8} [{bar}] {fraction * 100:3.0f}% {amount}/{total_text} "
        f"{rate_text} ETA {human_secs(eta)}"
    )


class Progress:
    """The ``on_progress``/``on_event`` callbacks the CLI hands to client and packer code."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._clock = clock
        self._phase: str | None = None
        self._started = 0.0
        self._last_draw = 0.0
        self._last: tuple[int, int | None] = (0, None)
        self._drawn = False

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        now = self._clock()
        if phase != self._phase:
            self._end_phase(now)
            self._phase, self._started, self._last_draw = phase, now, 0.0
            if not self.tty:
                self._write(f"aether: {phase}…\n")
        self._last = (done, total)
        if self.tty and (now - self._last_draw >= REDRAW_SECS or (total and done >= total)):
            self._last_draw = now
            self._write("\r\x1b[2K" + render_bar(phase, done, total, now - self._started))
            self._drawn = True

    def event(self, event: Event) -> None:
        """One deployment event as a line (above the bar on a terminal)."""
        self._clear()
        message = event.get("message") or ""
        self._write(f"  {event.get('phase', '?')}{': ' + message if message else ''}\n")

    def note(self, text: str) -> None:
        self._clear()
        self._write(f"aether: {text}\n")

    def close(self) -> None:
        self._end_phase(self._clock())
        self._phase = None

    def _end_phase(self, now: float) -> None:
        if self._phase is None:
            return
        elapsed = now - self._started
        done, _ = self._last
        if self.tty:
            self._clear()
        size = f", {human_bytes(done)}" if self._phase in BYTE_PHASES and done else ""
        self._write(f"aether: {self._phase} done in {elapsed:.1f}s{size}\n")

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r\x1b[2K")
            self._drawn = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def follow_with_progress(api: ApiClient, deployment_id: str, *, timeout_secs: float) -> Deployment:
    """Follow a rollout to its end, drawing its events on stderr (deploy, config, rollback,
    scale and restart all wait this way)."""
    from aether.client.follow import follow_deployment

    progress = Progress()
    progress("rollout", 0, None)
    try:
        return follow_deployment(
            api, deployment_id, on_event=progress.event, timeout_secs=timeout_secs
        )
    finally:
        progress.close()

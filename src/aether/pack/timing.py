"""Timing the phases of a pack: ``with timed(timings, "build"):`` adds the milliseconds."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


@contextlib.contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[phase]`` (ms, one decimal), even when it fails."""
    started = time.perf_counter()
    try:
        yield
    finally:
        spent = (time.perf_counter() - started) * 1000
        timings[phase] = round(timings.get(phase, 0.0) + spent, 1)

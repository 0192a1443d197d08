"""Waiting in tests: poll a check until it holds, with a deadline, never a bare sleep.

``wait_for`` polls from plain code, ``eventually`` from a coroutine (its check may be a plain
function or a coroutine function). Both return what the check returned once it is truthy and
fail at the deadline with an ``AssertionError`` naming what was waited for. Exceptions of the
kinds in ``ignoring`` count as "not yet" (a server still starting), and the last one is named
in the failure.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

INTERVAL_SECS = 0.05  # between two checks; the deadline bounds the whole wait


def wait_for(
    check: Callable[[], Any],
    *,
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = INTERVAL_SECS,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if result := check():
                return result
        except ignoring as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(_failure(what, timeout, last))
        time.sleep(interval)


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = INTERVAL_SECS,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """``wait_for`` inside a coroutine: the event loop runs on between checks."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except ignoring as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(_failure(what, timeout, last))
        await asyncio.sleep(interval)


def _failure(what: str, timeout: float, last: BaseException | None) -> str:
    message = f"{what} not met within {timeout:g}s"
    return message + (f" (last error: {last!r})" if last is not None else "")

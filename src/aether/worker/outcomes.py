"""Reconcile outcomes as exception types: retry later, or fail the deployment for good."""

from __future__ import annotations

from aether.errors import AetherError


class Retry(AetherError):
    """A transient fault (network, storage, API server): try again after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class Fatal(AetherError):
    """A permanent fault: the deployment fails with this message as its reason."""

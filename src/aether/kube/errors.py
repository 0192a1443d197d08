"""Kubernetes API failures as aether errors.

pykube and requests errors are translated here, where they enter, so nothing above ``kube``
sees a third-party exception. ``transient`` tells the worker whether trying again later can
help (API server unreachable, overloaded or restarting) or not (forbidden, invalid, missing).
"""

from __future__ import annotations

from aether.errors import AetherError, BadRequest, Conflict, Forbidden, NetworkError, NotFound


class KubeError(AetherError):
    """The Kubernetes API refused or failed a request; ``status`` is its HTTP status."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeUnavailable(KubeError, NetworkError):
    """The API server cannot be reached, timed out, is overloaded (429) or failing (5xx)."""

    transient = True
    code = "service_unavailable"


class KubeNotFound(KubeError, NotFound):
    """The object (or its namespace) does not exist."""


class KubeConflict(KubeError, Conflict):
    """A write raced another writer (stale resourceVersion) or the object already exists."""

    transient = True


class KubeForbidden(KubeError, Forbidden):
    """The credentials are rejected or lack a permission (RBAC)."""


class KubeInvalid(KubeError, BadRequest):
    """The API server rejected a manifest as invalid (400/422)."""


def error_for_status(status: int, message: str, *, what: str) -> KubeError:
    """The aether error for an HTTP error answer from the API server."""
    text = f"Kubernetes API: {what}: {message} (HTTP {status})"
    if status == 404:
        return KubeNotFound(text, status=status)
    if status == 409:
        return KubeConflict(text, status=status)
    if status in (401, 403):
        remedy = (
            "; check the worker's credentials and that its Role grants this "
            "(packaging/kubernetes/rbac.yaml)"
        )
        return KubeForbidden(text + remedy, status=status)
    if status in (400, 422):
        return KubeInvalid(text, status=status)
    if status == 429 or status >= 500:
        return KubeUnavailable(text, status=status)
    return KubeError(text, status=status)

"""Wire shapes shared by the client, the server and the worker. Pure: no I/O."""

from __future__ import annotations

import re

from aether.errors import AetherError, BadRequest

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
# DNS-1123 label: what Kubernetes accepts as a Service name and a Host-header label.
APP_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

DEPLOYMENT_STATUSES = ("pending", "deploying", "running", "failed", "superseded")
TERMINAL_STATUSES = ("running", "failed", "superseded")
ROLES = ("admin", "deployer", "reader")


def is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(DIGEST_RE.match(value))


def is_app_name(value: object) -> bool:
    return isinstance(value, str) and bool(APP_NAME_RE.match(value))


def check_app_name(name: object, *, error: type[AetherError] = BadRequest) -> str:
    """``name`` when it is an app name; else ``error`` (the API's 400, the CLI's usage error)."""
    if not isinstance(name, str) or not APP_NAME_RE.match(name):
        raise error(
            f"invalid app name {name!r}: use 1-63 lowercase letters, digits and '-',"
            " starting and ending with a letter or digit (a DNS-1123 label)"
        )
    return name


def sanitize_app_name(raw: str) -> str:
    """A package.json name → a DNS-1123 label (``@acme/My_App`` → ``acme-my-app``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower().lstrip("@")).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:63].strip("-")
    return name or "app"

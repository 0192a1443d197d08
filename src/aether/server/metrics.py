"""Prometheus metrics of the HTTP API, registered once per process at import.

Every label takes its value from a fixed set, whatever a client sends: the route *template*
(``/apps/{app}``, or ``unmatched``), never the raw path; the method when it is a standard one,
else ``other``; the status as a three-digit code. Several apps in one process (tests) share these collectors without collisions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Scope

UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered by the API, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request start to the end of the response body, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DEPLOYMENTS_CREATED = Counter(
    "deployments_created_total", "Deployments created (new rows, not idempotent repeats)"
)
AUTH_FAILURES = Counter("auth_failures_total", "Requests refused with 401 unauthorized")


class _DatabaseCounter(Collector):
    """A counter kept in the database (summed over every worker), read by a background loop:
    ``value`` is the last figure read."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation, self.value = name, documentation, 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.value)


LOG_LINES_DROPPED = _DatabaseCounter(
    "log_lines_dropped",
    "Log lines workers skipped because shipping fell behind the apps' output (all apps)",
)
REGISTRY.register(LOG_LINES_DROPPED)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED_ROUTE


def method_label(scope: Scope) -> str:
    """The request's method, or ``other`` for anything a client made up."""
    method = scope.get("method", "GET")
    return method if method in METHODS else OTHER_METHOD


def status_label(status: int) -> int:
    return status if 100 <= status <= 599 else 500


# (method, route, status) -> the counter and histogram children of that label set. Looking a
# child up through ``labels()`` validates and locks on every call; the label sets are bounded
# (route templates, not paths), so the children are kept once found.
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _children_for(method: str, route: str, status: int) -> tuple[Any, Any]:
    found = _children.get((method, route, status))
    if found is None:
        found = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_REQUEST_DURATION.labels(method, route),
        )
        _children[(method, route, status)] = found
    return found


def observe_request(scope: Scope, status: int, seconds: float) -> str:
    """Record one answered request; returns the route label used."""
    method, route = method_label(scope), route_template(scope)
    requests, duration = _children_for(method, route, status_label(status))
    requests.inc()
    duration.observe(seconds)
    if status == 401:
        AUTH_FAILURES.inc()
    return route


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

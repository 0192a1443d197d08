"""The API's routes: one module per resource, each exporting ``ROUTES`` and ``OPENAPI``.

:func:`aether.server.app.create_app` mounts :data:`ROUTES`. Starlette matches routes in order
and no two modules' paths overlap, so the hottest (deployment listing and polling, artifact
checks) come first; probes can afford a longer walk.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from aether.server.openapi import document_route
from aether.server.routes import (
    app_config,
    apps,
    artifacts,
    blobs,
    config,
    deployment_reports,
    deployments,
    health,
    instances,
    logs,
    public_keys,
    releases,
    signin_links,
    tokens,
    workers,
)

MODULES = (
    deployments,
    artifacts,
    health,
    apps,
    releases,
    instances,
    app_config,
    config,
    tokens,
    public_keys,
    blobs,
    logs,
    workers,
    deployment_reports,
    signin_links,
)
ROUTES: list[BaseRoute] = [
    *(route for module in MODULES for route in module.ROUTES),
    document_route(MODULES),
]

"""``GET /config``: what a client needs to choose its upload protocol and build for the runtime.

``target`` is the platform apps run on (``AETHER_TARGET_PLATFORM``, else this machine) and the
Node.js major they run on by default (``AETHER_NODE_MAJOR``, else the ``node`` on this
machine's PATH for the local runtime, 20 for Kubernetes): ``aether deploy`` installs the
production dependencies for it and refuses native files that could not run there.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from aether import __version__
from aether.pack.artifact_manifest import MANIFEST_REVISION
from aether.pack.nodeversion import binary_version, parse_major
from aether.pack.target import Target, host_target, parse_target
from aether.server.auth import principal
from aether.server.openapi import BOOL, INT, NULLABLE_STR, STR, obj, operation
from aether.server.responses import JSONResponse
from aether.server.state import get_state

DEFAULT_KUBE_NODE_MAJOR = 20


async def get_config(request: Request) -> JSONResponse:
    principal(request)
    state = get_state(request)
    policy = state.policy
    return JSONResponse(
        {
            "multipart_threshold_bytes": policy.multipart_threshold_bytes,
            "multipart_part_size_bytes": policy.multipart_part_size_bytes,
            "presign_expire_secs": state.blob_settings.presign_expire_secs,
            "max_artifact_size_bytes": policy.max_artifact_size_bytes,
            "require_signature": policy.require_signature,
            "require_sbom": policy.require_sbom,
            "version": __version__,
            "target": await _target(state.settings),
            # the client may send DeployReports (POST /deployments, PUT …/report)
            "deploy_reports": True,
            # the client may upload layered artifacts (POST /artifacts/manifests)
            "layered_artifacts": True,
            # which layered manifests it reads: 2, a layer's tar_sha256 may be left out
            "artifact_manifest_revision": MANIFEST_REVISION,
            # POST /deployments takes the artifact manifest to register first (manifest)
            "inline_manifests": True,
            # PUT /artifacts/{digest}/content takes an object up to this size in one request
            "direct_upload_max_bytes": state.settings.max_body_bytes,
        }
    )


async def _target(settings: Any) -> dict[str, Any]:
    key = (settings.target_platform, settings.node_major, settings.runtime)
    return await asyncio.to_thread(runtime_target, *key)


@functools.lru_cache(maxsize=4)
def runtime_target(platform: str | None, node_major: int | None, runtime: str) -> dict[str, Any]:
    """The platform apps run on, as ``GET /config`` reports it (worked out once)."""
    target = parse_target(platform, source="AETHER_TARGET_PLATFORM") if platform else host_target()
    return _with_node(target, node_major, runtime).as_json()


def _with_node(target: Target, node_major: int | None, runtime: str) -> Target:
    if node_major is not None:
        return target.with_node(node_major)
    if runtime == "kubernetes":
        return target.with_node(DEFAULT_KUBE_NODE_MAJOR)
    node = shutil.which("node")
    version = binary_version(node) if node else None
    return target.with_node(parse_major(version) if version else None, version)


ROUTES = [Route("/config", get_config, methods=["GET"])]
OPENAPI = {
    "/config": {
        "get": operation(
            "Upload limits and server version",
            response=obj(
                {
                    "multipart_threshold_bytes": INT,
                    "multipart_part_size_bytes": INT,
                    "presign_expire_secs": INT,
                    "max_artifact_size_bytes": INT,
                    "require_signature": BOOL,
                    "require_sbom": BOOL,
                    "version": STR,
                    "target": obj(
                        {
                            "os": STR,
                            "cpu": STR,
                            "libc": NULLABLE_STR,
                            "glibc_version": NULLABLE_STR,
                            "node_major": {"type": ["integer", "null"]},
                            "node_version": NULLABLE_STR,
                        }
                    ),
                    "deploy_reports": BOOL,
                    "layered_artifacts": BOOL,
                    "artifact_manifest_revision": INT,
                    "inline_manifests": BOOL,
                    "direct_upload_max_bytes": INT,
                }
            ),
            errors=(401,),
        )
    }
}

"""``GET /config``: what a client needs to choose its upload protocol."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from aether import __version__
from aether.server.auth import principal
from aether.server.openapi import BOOL, INT, STR, obj, operation
from aether.server.responses import JSONResponse
from aether.server.state import get_state


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
            "version": __version__,
        }
    )


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
                    "version": STR,
                }
            ),
            errors=(401,),
        )
    }
}

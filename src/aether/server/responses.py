"""The API's JSON response: starlette's, rendered by orjson.

The bytes are the ones starlette's ``JSONResponse`` renders (compact separators, UTF-8, no
ASCII escaping); orjson produces them an order of magnitude faster, which is most of the
encoding cost of a page of deployments.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response


def render_json(content: Any) -> bytes:
    # Non-string keys become strings, as the standard library's encoder makes them.
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return render_json(content)


def rendered_json(body: bytes) -> Response:
    """A JSON response whose body was rendered by :func:`render_json` earlier (a cache)."""
    return Response(body, media_type=JSONResponse.media_type)

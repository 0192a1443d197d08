"""Local presigned blob URLs (``/blobs/…``): PUT/GET with an HMAC signature, no bearer token."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
OPENAPI: dict[str, dict[str, Any]] = {}

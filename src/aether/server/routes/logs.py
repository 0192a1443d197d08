"""``GET /apps/{app}/logs``: an app's output as NDJSON, from the runtime's log source."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
OPENAPI: dict[str, dict[str, Any]] = {}

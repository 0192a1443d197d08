"""(being built)"""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
OPENAPI: dict[str, dict[str, Any]] = {}

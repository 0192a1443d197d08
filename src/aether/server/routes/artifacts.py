"""Artifact routes (metadata, presign/complete, multipart, legacy upload, download)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
OPENAPI: dict[str, dict[str, Any]] = {}

"""Every JSON answer of the API goes through one response class (orjson-rendered)."""

from __future__ import annotations

import ast
from pathlib import Path

import aether.server

SERVER = Path(aether.server.__file__).parent
HOME = SERVER / "responses.py"


def test_only_the_response_module_imports_starlettes_json_response() -> None:
    offenders = []
    for path in sorted(SERVER.rglob("*.py")):
        if path == HOME:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("starlette"):
                if any(alias.name == "JSONResponse" for alias in node.names):
                    offenders.append(str(path.relative_to(SERVER)))
    assert offenders == [], "import JSONResponse from aether.server.responses instead"

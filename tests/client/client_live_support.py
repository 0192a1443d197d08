"""Shared by the live client tests: a project whose artifact spans several small parts."""

from __future__ import annotations

import json
import random
from pathlib import Path

from aether.settings import ClientSettings

PART = 16 * 1024  # the servers in these tests use this as multipart threshold and part size


def make_big_project(root: Path) -> Path:
    """A dependency-free Node project whose artifact is a little over five parts."""
    root.mkdir()
    package = {"name": "big-app", "version": "1.0.0", "scripts": {"start": "node index.js"}}
    (root / "package.json").write_text(json.dumps(package))
    (root / "index.js").write_text("console.log('hi')\n")
    # incompressible bytes, so the artifact spans several parts
    (root / "blob.bin").write_bytes(random.Random(7).randbytes(5 * PART + 1234))
    return root


def settings_for(api_base: str, token: str) -> ClientSettings:
    return ClientSettings(
        api_base=api_base,
        token=token,
        default_namespace="aether",
        default_app=None,
        signing_key=None,
    )

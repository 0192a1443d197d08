"""Packing: a Node.js project → a deterministic, content-addressed artifact.

Called by ``aether pack`` / ``aether deploy`` (``build_artifact``), by ``aether verify``
(``verify_artifact``), and by the worker and ``aether fetch`` (``safe_extract``,
``sha256_file``, ``verify_signature``). Nothing here prints: progress goes through callbacks.
"""

from __future__ import annotations

from aether.pack.build import build_artifact
from aether.pack.digest import sha256_file
from aether.pack.extract import UnsafeArchive, safe_extract
from aether.pack.options import PackOptions, PackResult
from aether.pack.project import read_package_json
from aether.pack.signing import (
    generate_keypair,
    is_valid_public_key,
    load_private_key,
    sign_digest,
    verify_signature,
)
from aether.pack.verify import VerifyReport, verify_artifact

__all__ = [
    "PackOptions",
    "PackResult",
    "UnsafeArchive",
    "VerifyReport",
    "build_artifact",
    "generate_keypair",
    "is_valid_public_key",
    "load_private_key",
    "read_package_json",
    "safe_extract",
    "sha256_file",
    "sign_digest",
    "verify_artifact",
    "verify_signature",
]

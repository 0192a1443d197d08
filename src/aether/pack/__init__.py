"""Packing: a Node.js project → a deterministic, content-addressed artifact.

Called by ``aether pack`` / ``aether deploy`` (``build_artifact``), by ``aether verify``
(``verify_artifact``), and by the worker and ``aether fetch`` (``safe_extract``,
``sha256_file``, ``verify_signature``). Nothing here prints: progress goes through callbacks.
The names below are loaded on first use, so importing the package stays cheap (cryptography
and cyclonedx are only imported by the pack that signs or writes an SBOM).

Dataclasses on the path of every ``aether pack`` and ``aether deploy`` (here, in
``aether.client`` and ``aether.clientsettings``) that are never compared or printed are
declared ``eq=False, repr=False``: Python 3.11 compiles each generated method from source at
every start (~60 µs each). Small immutable records that nothing compares are NamedTuples,
which cost a fraction of a frozen dataclass to create.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "PackOptions": "aether.pack.options",
    "PackResult": "aether.pack.options",
    "build_artifact": "aether.pack.build",
    "read_package_json": "aether.pack.project",
    "sha256_file": "aether.digests",
    "safe_extract": "aether.pack.extract",
    "UnsafeArchive": "aether.pack.extract",
    "verify_artifact": "aether.pack.verify",
    "VerifyReport": "aether.pack.verify",
    "generate_keypair": "aether.pack.signing",
    "is_valid_public_key": "aether.pack.signing",
    "load_private_key": "aether.pack.signing",
    "sign_digest": "aether.pack.signing",
    "verify_signature": "aether.pack.signing",
}

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

if TYPE_CHECKING:  # pragma: no cover - for type checkers and readers
    from aether.digests import sha256_file
    from aether.pack.build import build_artifact
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aether.pack' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

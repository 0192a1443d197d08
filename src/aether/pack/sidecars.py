"""What a pack writes beside the artifact: the CycloneDX SBOM (reused while its inputs hold)
and the Ed25519 signature; stale ones from an earlier pack are removed when this pack writes
none."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aether.errors import IOFailure
from aether.pack.layout import Layout
from aether.pack.lockfile import sbom_inputs_key
from aether.pack.manifest import write_text_atomic
from aether.pack.options import PackOptions

Progress = Callable[[str, int, int | None], None]


def write_sbom(
    root: Path,
    package: dict[str, Any],
    layout: Layout,
    options: PackOptions,
    epoch: int | None,
    progress: Progress,
    installed_root: Path | None = None,
) -> Path | None:
    """The SBOM beside the artifact; ``epoch`` is None unless SOURCE_DATE_EPOCH was set."""
    if not options.sbom:
        remove_stale(layout.sbom)
        remove_stale(layout.sbom_key)
        return None
    progress("sbom", 0, None)
    key = sbom_inputs_key(root, package, epoch, installed_root)
    if _reusable_sbom(layout, key):
        return layout.sbom
    from aether.pack.sbom import build_sbom  # cyclonedx is slow to import; only when needed

    remove_stale(layout.sbom_key)  # never a key beside an SBOM it does not describe
    text = build_sbom(root, package, source_date_epoch=epoch, installed_root=installed_root)
    write_text_atomic(layout.sbom, text)
    write_text_atomic(layout.sbom_key, f"{key} {_sha256_text(text)}\n")
    return layout.sbom


def _reusable_sbom(layout: Layout, key: str) -> bool:
    """The SBOM beside the artifact was made from these inputs and is unchanged since."""
    try:
        recorded = layout.sbom_key.read_text(encoding="ascii").split()
        text = layout.sbom.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return recorded == [key, _sha256_text(text)]


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_signature(layout: Layout, key: str | None, digest: str, progress: Progress) -> str | None:
    if not key:
        remove_stale(layout.signature)
        return None
    progress("sign", 0, None)
    from aether.pack.signing import sign_digest

    signature_hex = sign_digest(key, digest)
    write_text_atomic(layout.signature, signature_hex)
    return signature_hex


def remove_stale(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot remove the stale {path}: {exc.strerror or exc}") from exc

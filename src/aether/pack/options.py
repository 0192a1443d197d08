"""What a pack is asked to do (``PackOptions``) and what it produced (``PackResult``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PackOptions:
    out: Path | None = None  # a folder or a file; default <project>/.aether/
    compression: str = "zstd"  # "zstd" | "gzip"
    sbom: bool = True
    install: bool = True
    signing_key: str | None = None  # 64 hex seed or PEM path (AETHER_SIGNING_KEY)
    source_date_epoch: int | None = None  # None: SOURCE_DATE_EPOCH from the environment, or 0
    skip_unsafe: bool = False  # warn and skip unsafe entries instead of failing


@dataclass(frozen=True)
class PackResult:
    artifact: Path
    digest: str  # sha256 hex of the artifact file's bytes
    size_bytes: int
    manifest: Path
    sbom: Path | None
    signature: Path | None
    signature_hex: str | None
    compression: str
    files: int  # regular files in the artifact
    bytes_in: int  # their total size, uncompressed
    timings_ms: dict[str, float]  # install, walk, pack, sbom, sign

    def as_json(self) -> dict[str, Any]:
        """The seed's stable fields, paths as strings."""
        return {
            "artifact": str(self.artifact),
            "digest": self.digest,
            "size_bytes": self.size_bytes,
            "manifest": str(self.manifest),
            "sbom": None if self.sbom is None else str(self.sbom),
            "signature": None if self.signature is None else str(self.signature),
            "compression": self.compression,
            "files": self.files,
            "bytes_in": self.bytes_in,
            "timings_ms": dict(self.timings_ms),
        }

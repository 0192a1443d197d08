"""What a pack is asked to do (``PackOptions``) and what it produced (``PackResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aether.pack.target import Target


@dataclass(frozen=True, eq=False, repr=False)
class PackOptions:
    out: Path | None = None  # a folder or a file; default <project>/.aether/
    compression: str = "zstd"  # "zstd" | "gzip"
    sbom: bool = True
    # False: pack the folder as it is (its node_modules included); no staged build
    install: bool = True
    build: bool = True  # run the build script (staged builds only)
    target: Target | None = None  # None: this machine, with its Node.js major
    native_check: bool = True  # refuse native files that cannot run on the target
    start_command: str | None = None  # checked before packing; None: the package's default
    # True: a start command that cannot work stops the pack (deploys); False: a warning
    require_start: bool = False
    cache_dir: Path | None = None  # the build and dependency caches; None: <cache dir of aether>
    signing_key: str | None = None  # 64 hex seed or PEM path (AETHER_SIGNING_KEY)
    source_date_epoch: int | None = None  # None: SOURCE_DATE_EPOCH from the environment, or 0
    skip_unsafe: bool = False  # warn and skip unsafe entries instead of failing
    # True: format 2, a manifest naming a deps and an app layer (docs/artifact-format.md);
    # False: one self-contained archive (format 1)
    layered: bool = False


@dataclass(frozen=True, eq=False, repr=False)
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
    timings_ms: dict[str, float]  # stage, install, build, walk, pack, check, sbom, sign
    build: dict[str, Any] = field(default_factory=dict)  # what the staged build did (as_json)
    node_major: int | None = None  # the Node.js major the artifact is built for
    start_command: str | None = None  # set when the app starts elsewhere than the root
    warnings: tuple[str, ...] = ()
    # format 2: the layers (name, digest, size, path, reused from the local cache)
    layers: tuple[dict[str, Any], ...] = ()

    @property
    def layered(self) -> bool:
        return bool(self.layers)

    def as_json(self) -> dict[str, Any]:
        """The seed's stable fields, paths as strings, and what the build did."""
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
            "build": dict(self.build),
            "node_major": self.node_major,
            "start_command": self.start_command,
            "warnings": list(self.warnings),
            "format": 2 if self.layers else 1,
            "layers": [dict(layer) for layer in self.layers],
        }

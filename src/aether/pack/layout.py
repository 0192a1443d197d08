"""Where a pack writes: the artifact path and the files beside it.

``--out`` may name a folder (existing, or anything without an archive suffix) or the artifact
file itself. Beside the artifact ``A``: ``A.manifest.json``, ``A.cdx.json`` (the SBOM) and
``A.sig``, and ``A.cdx.key`` (what the SBOM was made from, to reuse it); the same names are used by ``aether verify`` to find them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from aether.errors import UsageError
from aether.pack.compress import COMPRESSIONS, SUFFIXES
from aether.pack.ignore import OUTPUT_DIR

ARTIFACT_STEM = "app"
ARTIFACT_MANIFEST = "app.artifact.json"  # a layered artifact's manifest in its folder
_MATCHING_SUFFIXES = {"zstd": (".tar.zst", ".zst"), "gzip": (".tar.gz", ".tgz", ".gz")}
_FILE_SUFFIXES = (*_MATCHING_SUFFIXES["zstd"], *_MATCHING_SUFFIXES["gzip"], ".tar")


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".manifest.json")


def sbom_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".cdx.json")


def sbom_key_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".cdx.key")


def signature_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".sig")


class Layout(NamedTuple):
    artifact: Path
    folder: Path | None = None  # the output folder when one was named (left out of packs)

    @property
    def manifest(self) -> Path:
        return manifest_path(self.artifact)

    @property
    def sbom(self) -> Path:
        return sbom_path(self.artifact)

    @property
    def sbom_key(self) -> Path:
        return sbom_key_path(self.artifact)

    @property
    def signature(self) -> Path:
        return signature_path(self.artifact)

    @classmethod
    def choose(cls, project_dir: Path, out: Path | None, compression: str) -> Layout:
        if compression not in COMPRESSIONS:
            raise UsageError(f"unknown compression {compression!r}; use zstd or gzip")
        default_name = ARTIFACT_STEM + SUFFIXES[compression]
        if out is None:
            return cls(project_dir / OUTPUT_DIR / default_name, project_dir / OUTPUT_DIR)
        out = out.expanduser().resolve()
        if out.is_dir() or not out.name.endswith(_FILE_SUFFIXES):
            return cls(out / default_name, out)
        if not out.name.endswith(_MATCHING_SUFFIXES[compression]):
            raise UsageError(
                f"--out {out.name} does not fit --compression {compression}; name the file "
                f"*{SUFFIXES[compression]} or pick the other compression"
            )
        return cls(out)

    @classmethod
    def choose_layered(cls, project_dir: Path, out: Path | None) -> Layout:
        """A layered artifact is a folder: the manifest, ``layers/`` and the files beside."""
        if out is None:
            folder = project_dir / OUTPUT_DIR
        else:
            folder = out.expanduser().resolve()
            if folder.name.endswith(_FILE_SUFFIXES) and not folder.is_dir():
                raise UsageError(
                    f"--out {folder.name} names an archive; a layered artifact is written to a "
                    "folder (pass --single-file for one self-contained archive)"
                )
        return cls(folder / ARTIFACT_MANIFEST, folder)

    def excluded_from(self, project_dir: Path) -> list[str]:
        """Relative paths of this pack's own outputs inside the project (never packed)."""
        excluded = []
        for path in (self.artifact, self.manifest, self.sbom, self.sbom_key, self.signature):
            try:
                excluded.append(path.relative_to(project_dir).as_posix())
            except ValueError:
                continue
        folder = self.folder
        if folder is not None and folder != project_dir and folder.is_relative_to(project_dir):
            excluded.append(folder.relative_to(project_dir).as_posix())
        return excluded

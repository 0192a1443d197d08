"""``StagedTree``: what the packer packs, as ``prepare`` hands it on.

Its own module so that packing a folder as it is (``--no-install``) does not load the staged
build's modules (``staged``, ``deps``, ``managers``, ``mirror``, ``workspaces``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aether.pack.deps import DepsSet
    from aether.pack.managers import PackageManager


@dataclass(eq=False, repr=False)
class StagedTree:
    """What to pack: ``root`` with ``excluded`` left out and ``mounts`` packed in."""

    root: Path
    staged: bool = True  # False: the project folder itself, packed as it is (--no-install)
    app_dir: str = ""  # the deployed package's folder inside root ("" unless a workspace)
    excluded: tuple[str, ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()
    real_bases: tuple[str, ...] = ()
    deps: DepsSet | None = None
    manager: PackageManager | None = None
    built: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def installed_root(self) -> Path:
        """Where the packed node_modules lives (what the SBOM checks optional packages in)."""
        return self.deps.root if self.deps is not None else self.root

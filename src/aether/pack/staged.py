"""The staged build: the project's files, installed and built in a folder of the cache dir.

    <cache>/builds/<name>-<hash of the project's path>/
        tree/               the project mirrored (``mirror``), its full install, the build output
        full-install.key    what the full install in tree/ was made from (reused while equal)
        out/                what ``aether deploy`` writes (artifact, manifest, SBOM)
    <cache>/deps/<key>/     the production install (``deps``), shared by every build

The developer's folder is only read. The full install (devDependencies included) runs in
``tree/`` only when a build script runs, and stays there between deploys (a code-only redeploy
reinstalls nothing); the production install is a separate cached folder. The two trees meet
only at pack time: the walker packs ``tree/`` without its ``node_modules`` and mounts the
production ``node_modules`` in their place.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from aether.errors import IOFailure
from aether.pack.deps import DepsSet, inputs_digest, install_inputs, production_deps
from aether.pack.managers import PackageManager, choose_manager
from aether.pack.mirror import mirror_project
from aether.pack.project import has_dependencies, read_package_json
from aether.pack.stagedtree import StagedTree
from aether.pack.target import Target
from aether.pack.timing import timed
from aether.pack.toolrun import run_tool
from aether.pack.workspaces import Workspace, find_workspace

Progress = Callable[[str, int, int | None], None]
BUILD_SCRIPT = "build"
PNPM_STATE = ".modules.yaml"
log = logging.getLogger("aether.pack")


class StageRequest(NamedTuple):
    project: Path  # the folder deployed (a workspace package, or a whole project)
    target: Target  # node_major already chosen
    cache: Path  # <cache dir of aether>
    run_build: bool = True
    excluded: tuple[str, ...] = ()  # output paths inside the project, never mirrored
    skip_unsafe: bool = False
    local_node: str | None = None  # the version of the node that runs installs and builds


def build_folder(cache: Path, project: Path) -> Path:
    """The build folder of a project: one per project path, readable by a person."""
    resolved = project.resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", resolved.name)[:40] or "project"
    return cache / "builds" / f"{name}-{digest}"


def stage_project(
    request: StageRequest, environ: Mapping[str, str], progress: Progress
) -> StagedTree:
    """Mirror, install, build and install the production set; the tree to pack."""
    workspace = find_workspace(request.project)
    source = workspace.root if workspace else request.project.resolve()
    folder = build_folder(request.cache, request.project)
    with _locked(folder):
        return _Stage(request, workspace, source, folder, environ, progress).run()


@dataclass(eq=False, repr=False)
class _Stage:
    request: StageRequest
    workspace: Workspace | None
    source: Path
    folder: Path
    environ: Mapping[str, str]
    progress: Progress

    @property
    def tree(self) -> Path:
        return self.folder / "tree"

    def run(self) -> StagedTree:
        staged = StagedTree(
            root=self.tree, app_dir=self.workspace.package if self.workspace else ""
        )
        with timed(staged.timings, "stage"):
            self.progress("stage", 0, None)
            excluded = self._excluded_sources()
            mirror_project(
                self.source, self.tree, excluded=excluded, skip_unsafe=self.request.skip_unsafe
            )
        package = read_package_json(self.tree / staged.app_dir)
        builds = self._builds(package)
        needs_install = bool(builds) or self._needs_deps(package)
        if not needs_install:
            staged.excluded = ("node_modules",)
            return staged
        cache = self.request.cache
        staged.manager = choose_manager(self.tree, self._root_package(), self.environ, cache)
        local_node = _major_text(self.request.local_node)
        if builds:
            with timed(staged.timings, "install"):
                self._full_install(staged.manager, local_node)
            with timed(staged.timings, "build"):
                for folder in builds:
                    self.progress("build", 0, None)
                    run_tool(
                        staged.manager.run_script(BUILD_SCRIPT), self.tree / folder, self.environ
                    )
            staged.built = True
        with timed(staged.timings, "deps"):
            if self._needs_deps(package):
                self.progress("install", 0, None)
                staged.deps = self._production(staged.manager, local_node)
        self._compose(staged)
        return staged

    def _excluded_sources(self) -> tuple[str, ...]:
        """Output paths inside the project, relative to the mirrored folder."""
        if not self.workspace:
            return self.request.excluded
        return tuple(f"{self.workspace.package}/{rel}" for rel in self.request.excluded)

    def _root_package(self) -> dict[str, Any]:
        return read_package_json(self.tree)

    def _builds(self, package: dict[str, Any]) -> list[str]:
        """Folders (relative to the tree) whose build script runs, in order."""
        if not self.request.run_build:
            return []
        folders = self.workspace.needed() if self.workspace else [""]
        return [folder for folder in folders if _has_script(self.tree / folder, BUILD_SCRIPT)]

    def _needs_deps(self, package: dict[str, Any]) -> bool:
        if self.workspace:
            return True  # the workspace packages it needs are linked by the install
        return has_dependencies(package)

    def _manifests(self) -> list[str]:
        if not self.workspace:
            return ["package.json"]
        return ["package.json", *(f"{folder}/package.json" for folder in self.workspace.members)]

    def _full_install(self, manager: PackageManager, local_node: str | None) -> None:
        inputs = install_inputs(self.tree, self._manifests(), strip_scripts=False)
        key = inputs_digest(inputs, manager.flavour, manager.version, local_node)
        marker = self.folder / "full-install.key"
        if _read(marker) == key and (self.tree / "node_modules").is_dir():
            return
        self.progress("install", 0, None)
        marker.unlink(missing_ok=True)
        run_tool(manager.full_install(), self.tree, manager.environment(self.environ))
        marker.write_text(key, encoding="ascii")

    def _production(self, manager: PackageManager, local_node: str | None) -> DepsSet:
        workspace = None
        if self.workspace:
            folder = self.workspace.package
            workspace = (folder, self.workspace.members[folder])
        return production_deps(
            self.tree,
            self._manifests(),
            manager,
            self.request.target,
            local_node,
            self.request.cache,
            self.environ,
            workspace=workspace,
        )

    def _compose(self, staged: StagedTree) -> None:
        """Leave the build's own node_modules (and unneeded workspace packages) out; mount
        the production node_modules in their place."""
        folders = [""]
        excluded: list[str] = []
        if self.workspace:
            needed = self.workspace.needed()
            folders += needed
            excluded += [f for f in self.workspace.members if f not in needed]
            excluded += [f"{f}/node_modules" for f in self.workspace.members]
        excluded.append("node_modules")
        staged.excluded = tuple(excluded)
        if staged.deps is None:
            return
        mounts = []
        for folder in folders:
            installed = staged.deps.root / folder / "node_modules"
            if installed.is_dir():
                member = f"{folder}/node_modules" if folder else "node_modules"
                mounts.append((member, os.fspath(installed)))
        staged.mounts = tuple(mounts)
        # pnpm's own bookkeeping, with this machine's store path and a time in it: not needed
        # to run the app, and it would make the same dependencies pack differently elsewhere.
        staged.excluded += tuple(f"{member}/{PNPM_STATE}" for member, _ in mounts)
        staged.real_bases = (os.path.realpath(staged.deps.root),)


def _has_script(folder: Path, name: str) -> bool:
    scripts = read_package_json(folder).get("scripts")
    return isinstance(scripts, dict) and isinstance(scripts.get(name), str)


def _major_text(version: str | None) -> str | None:
    """Installs key on the Node.js major: compiled addons follow its ABI, not the patch."""
    return version.split(".")[0] if version else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One build at a time per build folder (two deploys of one project wait in turn)."""
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / "lock", "w")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        raise IOFailure(f"cannot use the build folder {folder}: {exc.strerror or exc}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield

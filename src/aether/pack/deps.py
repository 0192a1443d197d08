"""The production dependency set: installed once per key into its own cached folder.

``<cache>/deps/<key>/node_modules`` holds the production install for one key: the bytes of
the files the install reads (package.json without its scripts, the lockfile, the package
manager's configuration and patches), the package manager and its version, the install
command's flags, the target platform and Node.js major, and the Node.js that runs the install
(compiled addons follow its ABI). While the key holds, the folder is reused untouched: nothing
is installed, nothing is copied. It is written beside its final name and renamed into place
once complete, so an interrupted install never leaves a folder that looks finished.

Only ``node_modules`` of this folder is packed (mounted into the app's tree at pack time), and
for a workspace the ``node_modules`` folders of the workspace packages it needs too. This is
the dependencies layer of an artifact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from aether.errors import IOFailure
from aether.pack.managers import PackageManager
from aether.pack.target import Target
from aether.pack.toolrun import OutputCallback, run_tool

FORMAT = 1  # bump when what goes into a deps folder changes
KEEP_SETS = 4  # dependency sets kept per cache besides the one in use
COMPLETE = ".aether-deps.json"
# What an install reads besides package.json and the lockfile.
CONFIG_FILES = (".npmrc", ".yarnrc", ".yarnrc.yml", ".pnpmfile.cjs", "pnpm-workspace.yaml")
CONFIG_FOLDERS = (".yarn/releases", ".yarn/plugins", ".yarn/patches", "patches")
log = logging.getLogger("aether.pack")


class DepsSet(NamedTuple):
    """A finished production install."""

    root: Path  # <cache>/deps/<key>
    key: str
    reused: bool
    seconds: float

    @property
    def node_modules(self) -> Path:
        return self.root / "node_modules"


def production_deps(
    tree: Path,
    manifests: list[str],
    manager: PackageManager,
    target: Target,
    local_node: str | None,
    cache: Path,
    environ: Mapping[str, str],
    *,
    workspace: tuple[str, str] | None = None,
    on_output: OutputCallback | None = None,
) -> DepsSet:
    """The production install for the project mirrored at ``tree``.

    ``manifests`` are the package.json files the install reads, relative to ``tree`` (one,
    or the workspace root's and its packages'); their scripts are left out, because a
    project's own install hooks run in the full install before the build, not here.
    """
    inputs = install_inputs(tree, manifests, strip_scripts=True)
    command = manager.production_install(target, workspace)
    key = _key(inputs, manager, command, target, local_node)
    root = cache / "deps" / key
    if (root / COMPLETE).is_file():
        _touch(root / COMPLETE)
        return DepsSet(root, key, reused=True, seconds=0.0)
    started = time.perf_counter()
    staging = root.with_name(f".{key}.{os.getpid()}.partial")
    try:
        _write_inputs(staging, inputs, manager, target)
        run_tool(command, staging, manager.environment(environ), on_output=on_output)
        (staging / COMPLETE).write_text(
            json.dumps({"manager": str(manager), "target": str(target)}), encoding="utf-8"
        )
        _move_into_place(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(cache / "deps", keep=root)
    return DepsSet(root, key, reused=False, seconds=time.perf_counter() - started)


def install_inputs(tree: Path, manifests: list[str], *, strip_scripts: bool) -> dict[str, bytes]:
    """Relative path → bytes of every file an install reads."""
    inputs: dict[str, bytes] = {}
    try:
        for rel in manifests:
            raw = (tree / rel).read_bytes()
            if strip_scripts:
                package = json.loads(raw)
                package.pop("scripts", None)
                raw = json.dumps(package, indent=2, sort_keys=True).encode() + b"\n"
            inputs[rel] = raw
        for name in _lockfile_names() + CONFIG_FILES:
            if (tree / name).is_file():
                inputs[name] = (tree / name).read_bytes()
        for folder in CONFIG_FOLDERS:
            for path in sorted((tree / folder).rglob("*")) if (tree / folder).is_dir() else ():
                if path.is_file():
                    inputs[path.relative_to(tree).as_posix()] = path.read_bytes()
    except (OSError, ValueError) as exc:
        raise IOFailure(f"cannot read the install inputs in {tree}: {exc}") from exc
    return inputs


def inputs_digest(inputs: dict[str, bytes], *extra: object) -> str:
    """One digest of install inputs and whatever else decides the install's result."""
    material = {
        "format": FORMAT,
        "extra": [str(item) for item in extra],
        "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(inputs.items())},
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _lockfile_names() -> tuple[str, ...]:
    from aether.pack.project import LOCKFILES

    return tuple(name for name, _ in LOCKFILES)


def _key(
    inputs: dict[str, bytes],
    manager: PackageManager,
    command: tuple[str, ...],
    target: Target,
    local_node: str | None,
) -> str:
    flags = " ".join(command[len(manager.argv) :])
    platform = (target.os, target.cpu, target.libc, target.node_major)
    return inputs_digest(inputs, manager.flavour, manager.version, flags, platform, local_node)


def _write_inputs(
    folder: Path, inputs: dict[str, bytes], manager: PackageManager, target: Target
) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for rel, data in inputs.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if manager.flavour == "pnpm":
        _pnpm_architectures(folder / "package.json", target)
    elif manager.flavour == "yarn-berry":
        _yarn_architectures(folder / ".yarnrc.yml", target)


def _pnpm_architectures(package_json: Path, target: Target) -> None:
    """pnpm installs optional platform packages for ``supportedArchitectures`` only."""
    package = json.loads(package_json.read_text(encoding="utf-8"))
    settings = package.setdefault("pnpm", {})
    settings["supportedArchitectures"] = _architectures(target)
    package_json.write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")


def _yarn_architectures(yarnrc: Path, target: Target) -> None:
    text = yarnrc.read_text(encoding="utf-8") if yarnrc.is_file() else ""
    if "supportedArchitectures" in text:
        return  # the project chose itself
    lines = [f"  {key}: [{', '.join(values)}]" for key, values in _architectures(target).items()]
    yarnrc.write_text(
        text.rstrip("\n") + "\nsupportedArchitectures:\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )


def _architectures(target: Target) -> dict[str, list[str]]:
    found = {"os": [target.os], "cpu": [target.cpu]}
    if target.libc:
        found["libc"] = [target.libc]
    return found


def _move_into_place(staging: Path, root: Path) -> None:
    try:
        os.rename(staging, root)
    except OSError:
        if not (root / COMPLETE).is_file():  # not another deploy finishing the same key first
            raise


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError as exc:
        log.debug("cannot mark %s as used: %s", path, exc)


def _prune(folder: Path, keep: Path) -> None:
    """Remove all but the ``KEEP_SETS`` most recently used dependency sets (and ``keep``)."""
    sets = []
    for child in folder.iterdir():
        marker = child / COMPLETE
        if child != keep and marker.is_file():
            sets.append((marker.stat().st_mtime, child))
    for _, child in sorted(sets, reverse=True)[KEEP_SETS:]:
        shutil.rmtree(child, ignore_errors=True)

"""Which package manager a project uses, which version runs, and the commands it is given.

The lockfile decides the manager (``package-lock.json``/``npm-shrinkwrap.json`` → npm,
``pnpm-lock.yaml`` → pnpm, ``yarn.lock`` → yarn: classic for a ``# yarn lockfile v1`` file,
berry otherwise); the ``packageManager`` field of package.json (``pnpm@9.15.0``) decides the
version, and names the manager when there is no lockfile; neither → npm. The tool on ``PATH``
runs when its version fits; otherwise npm fetches the asked-for version from the registry and
runs it (``npx --yes pnpm@9.15.0``), so a machine with only Node.js and npm can deploy a pnpm
or yarn project. (Corepack would do the same, but it refuses registries that do not serve npm's
signing keys.)
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from aether.errors import ConfigError, UsageError
from aether.pack.project import Lockfile, find_lockfile
from aether.pack.target import Target
from aether.pack.toolrun import tool_version

NPX_PACKAGES = {
    "npm": "npm",
    "pnpm": "pnpm",
    "yarn-classic": "yarn",
    "yarn-berry": "@yarnpkg/cli-dist",
}
# When nothing names a version: the newest release of the line the lockfile was written by.
_DEFAULT_VERSIONS = {"pnpm": "9", "yarn-classic": "1", "yarn-berry": "4"}
_PNPM_LOCK_MAJORS = {"5": "7", "6": "8", "9": "9"}


class PackageManager(NamedTuple):
    """One package manager as it will run for one project."""

    flavour: str  # npm | pnpm | yarn-classic | yarn-berry
    version: str  # what ``--version`` printed
    argv: tuple[str, ...]  # how to start it: ("/usr/bin/npm",) or ("/usr/bin/npx", …)
    lockfile: Lockfile | None

    @property
    def name(self) -> str:
        return self.flavour.split("-")[0]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    def full_install(self) -> tuple[str, ...]:
        """Everything, devDependencies included, exactly as the lockfile says."""
        locked = self.lockfile is not None
        args = {
            "npm": ("ci",) if locked else ("install", "--no-audit", "--no-fund"),
            "pnpm": ("install", "--frozen-lockfile" if locked else "--no-frozen-lockfile"),
            "yarn-classic": ("install", "--non-interactive")
            + (("--frozen-lockfile",) if locked else ()),
            "yarn-berry": ("install", "--immutable") if locked else ("install",),
        }[self.flavour]
        return (*self.argv, *args)

    def production_install(
        self, target: Target, workspace: tuple[str, str] | None = None
    ) -> tuple[str, ...]:
        """The production dependencies only, for ``target`` where the manager can aim;
        ``workspace`` (folder, package name): just what that workspace package needs."""
        locked = self.lockfile is not None
        folder, name = workspace or (None, None)
        if self.flavour == "npm":
            args: tuple[str, ...] = ("ci",) if locked else ("install", "--no-package-lock")
            args += ("--omit=dev", "--no-audit", "--no-fund", *npm_platform_flags(target))
            args += (f"--workspace={folder}",) if folder else ()
        elif self.flavour == "pnpm":
            args = ("install", "--prod", "--frozen-lockfile" if locked else "--no-frozen-lockfile")
            args += (f"--filter=./{folder}...",) if folder else ()
        elif self.flavour == "yarn-classic":  # no per-workspace install: all of them
            args = ("install", "--production", "--non-interactive")
            args += ("--frozen-lockfile",) if locked else ()
        else:
            args = ("workspaces", "focus", name or "--all", "--production")
        return (*self.argv, *args)

    def run_script(self, script: str) -> tuple[str, ...]:
        return (*self.argv, "run", script)

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The environment installs run with: quiet, no prompts, a node_modules folder."""
        env = dict(environ)
        env.setdefault("npm_config_update_notifier", "false")
        env.setdefault("npm_config_fund", "false")
        env["npm_config_yes"] = "true"  # npx fetches the manager without asking
        env.setdefault("COREPACK_ENABLE_DOWNLOAD_PROMPT", "0")
        if self.flavour == "yarn-berry":
            # Plug'n'Play leaves no node_modules to ship: the artifact needs a real folder.
            env["YARN_NODE_LINKER"] = "node-modules"
            env.setdefault("YARN_ENABLE_TELEMETRY", "0")
            # Yarn turns on immutable installs where it detects CI (the CI variable), which
            # refuses a project without yarn.lock; the lockfile decides here (--immutable).
            env.setdefault("YARN_ENABLE_IMMUTABLE_INSTALLS", "false")
        return env


def npm_platform_flags(target: Target) -> tuple[str, ...]:
    flags = (f"--os={target.os}", f"--cpu={target.cpu}")
    return (*flags, f"--libc={target.libc}") if target.libc else flags


def choose_manager(
    project_dir: Path, package: dict[str, Any], environ: Mapping[str, str], cache: Path
) -> PackageManager:
    """The manager for the project at ``project_dir`` (a workspace root, for a workspace)."""
    lockfile = find_lockfile(project_dir)
    wanted_name, wanted_version = _package_manager_field(package)
    flavour = _flavour(lockfile, wanted_name, wanted_version)
    if wanted_version is None and flavour == "pnpm" and lockfile is not None:
        wanted_version = _pnpm_line(lockfile.path)
    argv, version = _invocation(flavour, wanted_version, environ, cache)
    return PackageManager(flavour, version, argv, lockfile)


def _package_manager_field(package: dict[str, Any]) -> tuple[str | None, str | None]:
    raw = package.get("packageManager")
    if raw is None:
        return None, None
    if not isinstance(raw, str) or "@" not in raw.lstrip("@"):
        raise UsageError(
            f'package.json: packageManager {raw!r} must look like "pnpm@9.15.0" (name@version)'
        )
    name, _, version = raw.partition("@")
    version = version.split("+")[0]  # corepack's "+sha512.…" suffix
    if name not in ("npm", "pnpm", "yarn"):
        raise UsageError(f"package.json: packageManager names {name!r}; use npm, pnpm or yarn")
    return name, version or None


def _flavour(lockfile: Lockfile | None, name: str | None, version: str | None) -> str:
    manager = lockfile.manager if lockfile else (name or "npm")
    if lockfile is not None and name is not None and name != lockfile.manager:
        raise UsageError(
            f"package.json says packageManager {name} but the lockfile is "
            f"{lockfile.path.name} ({lockfile.manager}): remove the stale one"
        )
    if manager != "yarn":
        return manager
    if version is not None:
        return "yarn-classic" if version.startswith("1.") else "yarn-berry"
    if lockfile is None:
        return "yarn-classic"
    return "yarn-classic" if _is_classic_yarn_lock(lockfile.path) else "yarn-berry"


def _is_classic_yarn_lock(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return True
    return b"__metadata:" not in head


def _pnpm_line(path: Path) -> str | None:
    """The pnpm major that writes this lockfile format (``lockfileVersion: '9.0'`` → 9)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return None
    value = first.partition(":")[2].strip().strip("'\"")
    return _PNPM_LOCK_MAJORS.get(value.split(".")[0])


def _invocation(
    flavour: str, wanted: str | None, environ: Mapping[str, str], cache: Path
) -> tuple[tuple[str, ...], str]:
    """(argv, version): the tool on PATH when it fits, else the wanted version through npx."""
    binary = "yarn" if flavour.startswith("yarn") else flavour
    found = shutil.which(binary, path=environ.get("PATH", ""))
    if found is not None:
        version = tool_version(found, environ, cache)
        if _fits(flavour, version, wanted):
            return (found,), version
    npx = shutil.which("npx", path=environ.get("PATH", ""))
    if npx is None:
        raise ConfigError(
            f"{binary} {wanted or ''} is needed to install this project's dependencies, and "
            "npm (whose npx would fetch it) is not on PATH either: install Node.js with npm"
        )
    spec = f"{NPX_PACKAGES[flavour]}@{wanted or _DEFAULT_VERSIONS.get(flavour, 'latest')}"
    argv = (npx, "--yes", "--package", spec, "--", binary)
    return argv, tool_version(argv, environ, cache)


def _fits(flavour: str, version: str, wanted: str | None) -> bool:
    if flavour == "yarn-classic" and not version.startswith("1."):
        return False
    if flavour == "yarn-berry" and version.startswith("1."):
        return False
    if wanted is None:
        return True
    return version == wanted or version.startswith(wanted + ".")

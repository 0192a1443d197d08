"""Before packing: choose the Node.js major, run the staged build, check the app can start.

The Node.js major comes from the project (``nodeversion``) and the target (the server's, or
this machine's for ``aether pack``); a project that cannot run there, a start command that
does not resolve or an entry file that is missing stop here, before the slow part and before
anything is uploaded. The build warns when this machine's Node.js major differs from the
target's: addons compiled here are then compiled for the wrong Node.js.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from aether.errors import UsageError
from aether.pack.entry import default_start_command, start_problems
from aether.pack.nodeversion import read_node_request
from aether.pack.options import PackOptions
from aether.pack.project import read_package_json
from aether.pack.stagedtree import StagedTree
from aether.pack.target import Target, host_target
from aether.pack.toolrun import tool_version
from aether.pack.walk import Walker

Progress = Callable[[str, int, int | None], None]
log = logging.getLogger("aether.pack")


class Prepared(NamedTuple):
    tree: StagedTree
    target: Target  # with the chosen Node.js major
    package: dict[str, Any]  # the deployed package's package.json
    start_command: str | None  # for a workspace package: how to start it from the root
    warnings: tuple[str, ...]


def prepare(
    project: Path,
    options: PackOptions,
    cache: Path,
    excluded: tuple[str, ...],
    environ: Mapping[str, str],
    progress: Progress,
) -> Prepared:
    package = read_package_json(project)
    local = _local_node(environ, cache)
    target = _target(project, package, options.target, local)
    warnings = _node_warnings(local, target)
    if options.install:
        from aether.pack.staged import StageRequest, stage_project  # only for a staged build

        request = StageRequest(
            project=project,
            target=target,
            cache=cache,
            run_build=options.build,
            excluded=excluded,
            skip_unsafe=options.skip_unsafe,
            local_node=local,
        )
        tree = stage_project(request, environ, progress)
    else:
        tree = StagedTree(root=project, staged=False)
    start = _start_command(tree, package, options.start_command)
    return Prepared(tree, target, package, start, warnings)


def check_start(
    prepared: Prepared, walker: Walker, command: str | None, *, required: bool
) -> tuple[str, ...]:
    """Why the start command cannot work from the packed tree: a UsageError when
    ``required``, else warnings."""
    tree = prepared.tree
    prefix = f"{tree.app_dir}/" if tree.app_dir else ""

    def exists(path: str) -> bool:
        return os.path.lexists(walker.source_path(prefix + path))

    command = command or default_start_command(prepared.package, exists)
    problems = start_problems(command, exists)
    if problems and required:
        raise UsageError(
            "the app would not start: "
            + "; ".join(problems)
            + " (set the start script in package.json, or pass --start-command)"
        )
    for problem in problems:
        log.warning("%s", problem)
    return tuple(problems)


def _target(
    project: Path, package: dict[str, Any], given: Target | None, local: str | None
) -> Target:
    target = given or host_target().with_node(_major(local), local)
    request = read_node_request(project, package)
    major = request.choose_major(target.node_major)
    exact = target.node_version if major == target.node_major else None
    problems = request.problems(major, exact)
    if problems:
        raise UsageError(
            "; ".join(problems) + ": change engines.node (or .nvmrc / .node-version) "
            "to a Node.js the server runs"
        )
    return target.with_node(major, exact)


def _node_warnings(local: str | None, target: Target) -> tuple[str, ...]:
    if local is None or target.node_major is None or _major(local) == target.node_major:
        return ()
    message = (
        f"this machine runs Node.js {local} but the app is built for Node.js "
        f"{target.node_major}: addons compiled here are built for {_major(local)}; use "
        f"Node.js {target.node_major} locally (nvm use {target.node_major})"
    )
    log.warning("%s", message)
    return (message,)


def _start_command(tree: StagedTree, package: dict[str, Any], explicit: str | None) -> str | None:
    """A workspace package starts in its own folder; a root app needs no explicit command."""
    if not tree.app_dir:
        return explicit
    app = tree.root / tree.app_dir
    inner = explicit or default_start_command(package, lambda p: (app / p).exists())
    return f"cd {tree.app_dir} && {inner}"


def _local_node(environ: Mapping[str, str], cache: Path) -> str | None:
    node = shutil.which("node", path=environ.get("PATH", ""))
    return tool_version(node, environ, cache) if node else None


def _major(version: str | None) -> int | None:
    head = (version or "").split(".")[0]
    return int(head) if head.isdigit() else None

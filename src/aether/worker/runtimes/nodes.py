"""Which ``node`` runs a release on the local runtime: the one of the Node.js major it was
built for.

``AETHER_NODE_BINARIES`` names a node per major (``{"22": "/opt/node-22/bin/node"}``); a
major it does not name runs on the ``node`` on the worker's PATH when that is the same major.
Any other release is refused with what to configure: an addon compiled for one Node.js ABI
crashes on another, so "close enough" is not run. Releases that name no major run on PATH's.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping

from aether.pack.nodeversion import binary_version, parse_major
from aether.worker.outcomes import Fatal


def node_folder(
    major: int | None, binaries: tuple[tuple[int, str], ...], environ: Mapping[str, str]
) -> str | None:
    """The folder to put first on PATH for ``major`` (None: PATH as it is)."""
    if major is None:
        return None
    configured = dict(binaries).get(major)
    if configured is not None:
        return _checked(configured, major)
    found = shutil.which("node", path=environ.get("PATH", os.defpath))
    version = _version(found) if found else None
    if version is not None and parse_major(version) == major:
        return None
    have = f"the node on its PATH is {version}" if version else "it has no node on its PATH"
    raise Fatal(
        f"this release is built for Node.js {major}, but {have} and AETHER_NODE_BINARIES names "
        f'no node for {major}: install Node.js {major} and set AETHER_NODE_BINARIES=\'{{"{major}": '
        '"/path/to/node"}\' for the worker, or deploy with a Node.js the worker has '
        "(engines.node, .nvmrc)"
    )


def _checked(binary: str, major: int) -> str:
    version = _version(binary)
    if version is None:
        raise Fatal(f"AETHER_NODE_BINARIES names {binary} for Node.js {major}, which cannot run")
    if parse_major(version) != major:
        raise Fatal(f"AETHER_NODE_BINARIES names {binary} for Node.js {major}, but it is {version}")
    return os.path.dirname(os.path.abspath(binary))


@functools.lru_cache(maxsize=16)
def _version(binary: str) -> str | None:
    return binary_version(binary)

"""The staged build's flags, shared by ``aether deploy`` and ``aether pack``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

_FLAGS = (
    click.option("--no-build", is_flag=True, help="Do not run the build script."),
    click.option(
        "--no-install",
        is_flag=True,
        help="Pack the folder as it is, node_modules included; no staged install or build.",
    ),
    click.option(
        "--no-native-check",
        is_flag=True,
        help="Skip the check that native files can run on the target platform.",
    ),
    click.option(
        "--check",
        is_flag=True,
        help="Boot the packed app here (PORT set) and wait for HTTP; a failure stops.",
    ),
    click.option("--health-path", metavar="PATH", help="Path that answers 2xx/3xx when ready."),
)


def staged_build_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--no-build``, ``--no-install``, ``--no-native-check``, ``--check``, ``--health-path``."""
    for flag in reversed(_FLAGS):
        command = flag(command)
    return command

"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="deploy")
def deploy() -> None:
    """Build, pack, upload and roll out the Node.js app at PATH."""
    raise NotImplementedYet("`aether deploy` is not implemented yet")

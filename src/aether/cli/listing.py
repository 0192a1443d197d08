"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="list")
def list_apps() -> None:
    """List apps and their deployments."""
    raise NotImplementedYet("`aether list` is not implemented yet")

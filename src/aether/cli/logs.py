"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="logs")
def logs() -> None:
    """Show or stream an app's output."""
    raise NotImplementedYet("`aether logs` is not implemented yet")

"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="serve")
def serve() -> None:
    """Run the control-plane API."""
    raise NotImplementedYet("`aether serve` is not implemented yet")

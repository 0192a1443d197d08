"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="worker")
def worker() -> None:
    """Run the reconciliation loop."""
    raise NotImplementedYet("`aether worker` is not implemented yet")

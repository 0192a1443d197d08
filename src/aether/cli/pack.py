"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="pack")
def pack() -> None:
    """Build a deterministic artifact for the Node.js project at PATH."""
    raise NotImplementedYet("`aether pack` is not implemented yet")

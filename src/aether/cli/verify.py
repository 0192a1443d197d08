"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="verify")
def verify() -> None:
    """Check an artifact against its manifest and signature."""
    raise NotImplementedYet("`aether verify` is not implemented yet")

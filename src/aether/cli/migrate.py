"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="migrate")
def migrate() -> None:
    """Apply database schema migrations."""
    raise NotImplementedYet("`aether migrate` is not implemented yet")

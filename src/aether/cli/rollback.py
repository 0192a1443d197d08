"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="rollback")
def rollback() -> None:
    """Redeploy an earlier release of an app."""
    raise NotImplementedYet("`aether rollback` is not implemented yet")

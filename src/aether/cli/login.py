"""Placeholder until this command is built: --help works, running it exits 20."""

from __future__ import annotations

import click

from aether.errors import NotImplementedYet


@click.command(name="login")
def login() -> None:
    """Store an API token for a control plane."""
    raise NotImplementedYet("`aether login` is not implemented yet")


@click.command(name="logout")
def logout() -> None:
    """Forget (and optionally revoke) the stored token."""
    raise NotImplementedYet("`aether logout` is not implemented yet")


@click.command(name="whoami")
def whoami() -> None:
    """Show who the stored token belongs to."""
    raise NotImplementedYet("`aether whoami` is not implemented yet")

"""``python -m aether`` runs the CLI (what the zipapp's entry point also calls)."""

from aether.cli import main

main()

"""Aether: artifact-centric deploys for Node.js services."""

__version__ = "0.1.0"

"""The `mcp-nats` command: up, serve, bridge."""

from .main import main as main

__all__ = ["main"]

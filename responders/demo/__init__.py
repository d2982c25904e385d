"""The `demo` service: one of everything MCP can carry, to see (and test) each feature end to end."""

from .service import build as build

__all__ = ["build"]

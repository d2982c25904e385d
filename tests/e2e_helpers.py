"""Driving the real bridge with the official MCP Python SDK client, as Claude Code would."""

from __future__ import annotations

from pathlib import Path

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from .conftest import MCP_NATS, child_env


def bridge_client(
    argv: list[str], mode: str = "auto", env: dict[str, str] | None = None, **kw: object
) -> Client:
    params = StdioServerParameters(
        command=MCP_NATS, args=argv, env=child_env(**(env or {})), cwd=str(Path.cwd())
    )
    return Client(params, mode=mode, **kw)  # type: ignore[arg-type]

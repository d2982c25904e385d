"""The Python SDK baseline: a minimal `mcp` 2.x `MCPServer` over stdio with one `read_file` tool.

Run as `python -m bench.sdk_server` (stdio). `read_file` is a plain `def`, the idiomatic file
tool (the SDK runs it in a worker thread), as in performance.md section 2.3.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-sdk")


@server.tool()
def read_file(path: str) -> str:
    """Read a UTF-8 text file."""
    with open(path, encoding="utf-8") as f:
        return f.read()


if __name__ == "__main__":
    server.run()

"""The `bench` service: one trivial `echo` tool, served by the project's responder runtime.

Run as its own process: `python -m bench.echo_service URL ROOT [MAX_CONCURRENCY]`. It is the
per-server throughput probe (design target: > 10,000 calls/s per responder process). It runs
with the settings `mcp-nats serve` would use (so the audit log is on where the code has one).
"""

from __future__ import annotations

import sys

import uvloop

from cli.config import load_settings
from responders import Service, serve

svc = Service("bench", "0.0.1", "A trivial service for throughput measurements.")


@svc.tool(read_only=True)
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


def main(argv: list[str]) -> None:
    """Settings as `mcp-nats serve` reads them (MCP_NATS_* variables included), with this URL and root."""
    overrides: dict[str, dict[str, object]] = {"nats": {"url": argv[0], "root": argv[1]}}
    if len(argv) > 2:
        overrides["responder"] = {"max_concurrency": int(argv[2])}
    uvloop.run(serve(svc, load_settings(None, overrides=overrides)))


if __name__ == "__main__":
    main(sys.argv[1:])

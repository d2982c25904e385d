"""A responder for the audit tests, started as its own process:

    python -m tests.audit_service URL ROOT [CONFIG.toml]

Tools that succeed, fail, and wait (reporting progress first, so a test knows the call is
running and can cancel it, or let its deadline pass). Settings come from CONFIG like any
`mcp-nats serve`, so tests can point the spool and the audit stream where they want.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from cli.config import load_settings
from responders import Context, Service, ToolError, serve

svc = Service("audited", "0.0.1", "Quick, failing and slow tools for the audit tests.")


@svc.tool(read_only=True)
def echo(text: str, password: str = "") -> str:
    """Return the text."""
    return text


@svc.tool
def fail(reason: str) -> str:
    """Fail with a tool error."""
    raise ToolError(f"failed on purpose: {reason}")


@svc.tool(read_only=True)
async def wait(seconds: float, ctx: Context) -> str:
    """Report progress once (the call is running), then sleep."""
    await ctx.report_progress(0, 1)
    await asyncio.sleep(seconds)
    return "waited"


if __name__ == "__main__":
    url, root = sys.argv[1], sys.argv[2]
    config = sys.argv[3] if len(sys.argv) > 3 else None
    settings = load_settings(
        config, environ={}, overrides={"nats": {"url": url, "root": root, "reconnect_wait": 0.1}}
    )
    uvloop.run(serve(svc, settings))

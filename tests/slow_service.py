"""A responder with a slow tool, started as its own process by tests (python -m tests.slow_service URL ROOT)."""

from __future__ import annotations

import asyncio
import sys

import uvloop

from responders import Context, Service, serve
from schemas.config import NatsSettings, Settings

svc = Service("slow", "0.0.1", "A service whose tool takes a while, for drain and cancellation tests.")


@svc.tool(read_only=True)
async def sleep(seconds: float, ctx: Context) -> str:
    """Sleep, reporting progress every tenth of the time, then say how long it slept."""
    for i in range(10):
        await asyncio.sleep(seconds / 10)
        await ctx.report_progress(i + 1, 10)
    return f"slept {seconds}"


@svc.tool(idempotent=False, destructive=False)
async def append(path: str, seconds: float = 0.0) -> str:
    """Append one line to a file after a pause (not idempotent, so never retried)."""
    await asyncio.sleep(seconds)
    with open(path, "a") as f:
        f.write("x\n")
    return "appended"


@svc.resource("slow://status", mime_type="text/plain")
def status() -> str:
    """The service's status line."""
    return "all good"


@svc.resource_template("slow://echo/{word}", name="echo", mime_type="application/octet-stream")
def echo(word: str) -> bytes:
    """The word back, as bytes."""
    return word.encode()


if __name__ == "__main__":
    url, root = sys.argv[1], sys.argv[2]
    uvloop.run(serve(svc, Settings(nats=NatsSettings(url=url, root=root))))

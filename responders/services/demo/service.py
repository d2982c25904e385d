"""`demo`: an everything-style service. Each tool, resource and prompt exercises one MCP feature.

Progress, logging, sampling, elicitation, roots, every content type, structured output, tool
errors, a subscribable resource that changes, a resource template, and a prompt whose
arguments complete. Stateless across instances (the counter is derived from the clock), so any
number of instances give the same answers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any, Final

from msgspec import Struct

from bus import BusError
from schemas.mcp import AudioContent, EmbeddedResource, ImageContent, ResourceLink, TextContent

from ...context import Context
from ...errors import ToolError
from ...events import Events
from ...plugin import ServiceRuntime
from ...service import Service

VERSION: Final = "0.1.0"
COUNTER_URI: Final = "demo://counter"
_log = logging.getLogger(__name__)
TICK: Final = 10.0
STYLES: Final = ("formal", "casual", "pirate")
NAMES: Final = ("ada", "alan", "barbara", "edsger", "grace", "linus")


class Sum(Struct, kw_only=True):
    a: int
    b: int
    sum: int


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built here rather than shipped."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x80\x00"))
        + chunk(b"IEND", b"")
    )


def tiny_wav() -> bytes:
    """A valid WAV: 10 ms of silence, 8 kHz mono 8-bit."""
    frames = b"\x80" * 80
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(frames))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(frames))
        + frames
    )


def counter_value() -> int:
    return int(time.time() // TICK)


def build(name: str = "demo") -> Service:
    svc = Service(
        name,
        VERSION,
        "One of everything MCP carries: progress, logging, sampling, elicitation, roots, every content type, "
        "structured output, a changing resource, a template, and a prompt with completions.",
        title="MCP feature demo",
    )
    svc.subscribable = True

    @svc.tool(read_only=True)
    async def progress(ctx: Context, steps: int = 5, delay: float = 0.05) -> str:
        """Count to `steps`, reporting progress after each step."""
        if not 0 < steps <= 1000:
            raise ToolError("steps must be between 1 and 1000")
        for i in range(1, steps + 1):
            await asyncio.sleep(delay)
            await ctx.report_progress(i, steps, f"step {i} of {steps}")
        return f"counted to {steps}"

    @svc.tool(read_only=True)
    async def log(ctx: Context, message: str, level: str = "info") -> str:
        """Send `message` to the client's log at `level`, and say whether the client wanted it."""
        await ctx.log(level, {"message": message}, logger="demo")
        return f"logged at {level}"

    @svc.tool(read_only=True, open_world=True)
    async def sample(ctx: Context, prompt: str) -> str:
        """Ask the client's model to answer `prompt` (MCP sampling) and return its answer."""
        result = await ctx.sample(
            [{"role": "user", "content": {"type": "text", "text": prompt}}], max_tokens=200
        )
        content = result.get("content") or {}
        text = content.get("text") if isinstance(content, dict) else None
        return f"the model ({result.get('model', '?')}) said: {text}"

    @svc.tool(read_only=True)
    async def elicit(ctx: Context, question: str = "What is your name?") -> str:
        """Ask the user a question (MCP elicitation, form mode) and greet them with the answer."""
        answer = await ctx.elicit(
            question, {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        )
        if answer.get("action") != "accept":
            return f"the user chose to {answer.get('action', 'cancel')}"
        return f"hello, {(answer.get('content') or {}).get('name', '?')}"

    @svc.tool(read_only=True)
    async def roots(ctx: Context) -> str:
        """List the client's roots (MCP roots)."""
        found = await ctx.list_roots()
        return "\n".join(f"{r.get('name', '')} {r.get('uri', '')}".strip() for r in found) or "(no roots)"

    @svc.tool(read_only=True)
    def content(kind: str = "all") -> list[Any]:
        """Return content of one kind (text, image, audio, resource_link, resource) or all of them."""
        blocks: dict[str, Any] = {
            "text": TextContent(text="plain text"),
            "image": ImageContent(data=base64.b64encode(tiny_png()).decode(), mimeType="image/png"),
            "audio": AudioContent(data=base64.b64encode(tiny_wav()).decode(), mimeType="audio/wav"),
            "resource_link": ResourceLink(uri=COUNTER_URI, name="counter", mimeType="text/plain"),
            "resource": EmbeddedResource(
                resource={"uri": "demo://echo/embedded", "mimeType": "text/plain", "text": "embedded"}
            ),
        }
        if kind == "all":
            return list(blocks.values())
        if kind not in blocks:
            raise ToolError(f"kind must be one of: all, {', '.join(blocks)}")
        return [blocks[kind]]

    @svc.tool(read_only=True)
    def add(a: int, b: int) -> Sum:
        """Add two integers; the result is structured (outputSchema + structuredContent)."""
        return Sum(a=a, b=b, sum=a + b)

    @svc.tool(read_only=True)
    def fail(message: str = "this tool always fails") -> str:
        """Fail with a tool error (isError: true) carrying `message`."""
        raise ToolError(message)

    @svc.tool(read_only=True)
    async def sleep(seconds: float) -> str:
        """Sleep (for trying cancellation and deadlines)."""
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @svc.tool(read_only=True)
    def big(kib: int) -> str:
        """Return `kib` KiB of text (for trying large results)."""
        if not 0 < kib <= 64 * 1024:
            raise ToolError("kib must be between 1 and 65536")
        line = "0123456789abcdef" * 4 + "\n"
        return line * (kib * 1024 // len(line))

    @svc.tool(idempotent=True, destructive=False)
    async def touch(ctx: Context) -> str:
        """Announce that demo://counter changed (subscribers get notifications/resources/updated)."""
        await ctx.events.resource_updated(COUNTER_URI)
        return f"announced an update of {COUNTER_URI}"

    @svc.resource(COUNTER_URI, name="counter", mime_type="text/plain")
    def counter() -> str:
        """A counter that moves every 10 seconds; subscribe to hear when it does."""
        return f"tick {counter_value()}"

    @svc.resource_template("demo://echo/{text}", name="echo", mime_type="text/plain")
    def echo(text: str) -> str:
        """The text of the URI back."""
        return text

    @svc.completer(template="demo://echo/{text}", argument="text")
    def echo_words(value: str, context: dict[str, str]) -> list[str]:
        return [w for w in ("hello", "help", "world") if w.startswith(value)]

    @svc.prompt(title="Greeting")
    def greet(name: str, style: str = "formal") -> str:
        """Greet someone in a style."""
        if style not in STYLES:
            raise ToolError(f"style must be one of {', '.join(STYLES)}")
        opening = {"formal": "Good day", "casual": "Hey", "pirate": "Ahoy"}[style]
        return f"{opening}, {name}! Write them a short welcome message."

    @svc.completer(prompt="greet", argument="style")
    def styles(value: str, context: dict[str, str]) -> list[str]:
        return [s for s in STYLES if s.startswith(value)]

    @svc.completer(prompt="greet", argument="name")
    def names(value: str, context: dict[str, str]) -> list[str]:
        return [n for n in NAMES if n.startswith(value.lower())]

    async def ticker(events: Events) -> None:
        last = counter_value()
        while True:
            await asyncio.sleep(TICK - time.time() % TICK + 0.01)
            if counter_value() != last:
                last = counter_value()
                try:
                    await events.resource_updated(COUNTER_URI)
                except BusError:
                    _log.debug("resource_updated not published", exc_info=True)

    @svc.lifespan
    @contextlib.asynccontextmanager
    async def ticking(runtime: ServiceRuntime) -> AsyncIterator[None]:
        """The counter resource changes every TICK seconds: announce it while the instance runs."""
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(ticker(runtime.events), name=f"{name} ticker")
            try:
                yield
            finally:
                task.cancel()

    return svc

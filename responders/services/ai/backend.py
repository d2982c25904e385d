"""The port both model-server backends implement (Ollama, OpenAI-compatible), and streamed-progress reporting."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from ...context import Context
from .outputs import ChatOutput, EmbedOutput, Generation, Message, ModelDetails, ModelsOutput, Status

OnChunk = Callable[[str], Awaitable[None]]
"""Called with each piece of streamed text (or status line) as it arrives."""


class ModelBackend(Protocol):
    """One model server. Methods raise AiErrors only."""

    kind: str

    async def generate(
        self, model: str, prompt: str, system: str | None, options: dict[str, Any], on_chunk: OnChunk
    ) -> Generation: ...

    async def chat(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        options: dict[str, Any],
        on_chunk: OnChunk,
    ) -> ChatOutput: ...

    async def embed(self, model: str, inputs: Sequence[str]) -> EmbedOutput: ...

    async def list_models(self) -> ModelsOutput: ...

    async def show_model(self, model: str) -> ModelDetails: ...

    async def pull(self, model: str, on_chunk: OnChunk) -> Status: ...

    async def delete(self, model: str) -> Status: ...


class Progress:
    """Streamed chunks as MCP progress notifications: the first at once, then at most one per `every` seconds.

    Each notification keeps a long call visibly alive; its progress is the number of chunks so far and
    its message the tail of the text received."""

    def __init__(
        self, ctx: Context | None, every: float = 0.25, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ctx = ctx
        self.every = every
        self.clock = clock
        self.chunks = 0
        self.chars = 0
        self._last: float | None = None
        self._tail = ""

    async def __call__(self, text: str) -> None:
        self.chunks += 1
        self.chars += len(text)
        self._tail = (self._tail + text)[-80:]
        now = self.clock()
        if self.ctx is None or (self._last is not None and now - self._last < self.every):
            return
        self._last = now
        await self.ctx.report_progress(self.chunks, None, f"{self.chars} characters received: …{self._tail}")

"""The `ai` service: a local or remote model server (Ollama, OpenAI-compatible) as tools, and `ask_client`,
which needs no model server at all: it asks the MCP client's own model (sampling, through the bridge).

Streamed answers become progress notifications (backend.Progress), so a long CPU generation shows it
is alive; the call's deadline still caps it, and cancelling the call closes the upstream request.
The httpx client is owned by the lifespan.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from msgspec import Meta

from ...context import Context
from ...errors import ToolError
from ...plugin import ServiceOptions, ServiceRuntime
from ...service import Service
from .backend import ModelBackend, Progress
from .errors import NoModel
from .ollama import OllamaBackend
from .openai import OpenAIBackend
from .outputs import Answer, ChatOutput, EmbedOutput, Generation, Message, ModelDetails, ModelsOutput, Status
from .settings import AiSettings
from .upstream import Upstream

VERSION: Final = "0.1.0"

ModelName = Annotated[
    str, Meta(max_length=256, description="Model name (default: the service's configured model)")
]
Options = Annotated[
    dict[str, Any],
    Meta(
        description="Sampling options: temperature, top_p, top_k, seed, stop, num_predict (max tokens), repeat_penalty..."
    ),
]
Prompt = Annotated[str, Meta(min_length=1, max_length=1_000_000)]


class AiTools:
    """The tools over one model server; `attach` binds the backend for an instance's life."""

    def __init__(self, settings: AiSettings) -> None:
        self.settings = settings
        self._backend: ModelBackend | None = None

    def attach(self, backend: ModelBackend | None) -> None:
        self._backend = backend

    @property
    def backend(self) -> ModelBackend:
        if self._backend is None:
            raise ToolError("the ai service is not connected to its model server yet")
        return self._backend

    def _model(self, given: str | None, default: str, what: str) -> str:
        model = given or default
        if not model:
            raise NoModel(what)
        return model

    async def generate(
        self,
        prompt: Prompt,
        model: ModelName | None = None,
        system: Annotated[str, Meta(max_length=100_000)] | None = None,
        options: Options | None = None,
        ctx: Context | None = None,
    ) -> Generation:
        """Generate a completion of `prompt` with a model on the configured server. The answer streams in
        as progress notifications; the result is the whole text."""
        m = self._model(model, self.settings.model, "generate")
        return await self.backend.generate(m, prompt, system, options or {}, Progress(ctx))

    async def chat(
        self,
        messages: Annotated[list[Message], Meta(min_length=1, max_length=1000)],
        model: ModelName | None = None,
        tools: Annotated[
            list[dict[str, Any]],
            Meta(
                max_length=128,
                description='Function tools: [{"type": "function", "function": {"name", "description", "parameters"}}]',
            ),
        ]
        | None = None,
        options: Options | None = None,
        ctx: Context | None = None,
    ) -> ChatOutput:
        """Chat with a model: send the conversation, get the assistant's next message. With `tools`, the
        model may answer with tool_calls (name and arguments) for you to run and report back in a `tool` message."""
        m = self._model(model, self.settings.model, "chat")
        return await self.backend.chat(m, messages, tools or [], options or {}, Progress(ctx))

    async def embed(
        self,
        input: Annotated[list[Annotated[str, Meta(max_length=100_000)]], Meta(min_length=1, max_length=256)],
        model: ModelName | None = None,
    ) -> EmbedOutput:
        """Embed texts with an embedding model on the configured server: one vector per input."""
        m = self._model(model, self.settings.embed_model or self.settings.model, "embed")
        return await self.backend.embed(m, input)

    async def list_models(self) -> ModelsOutput:
        """The models the server has."""
        return await self.backend.list_models()

    async def show_model(self, model: ModelName) -> ModelDetails:
        """Details of one model (family, parameters, template, capabilities)."""
        return await self.backend.show_model(model)

    async def pull(self, model: ModelName, ctx: Context | None = None) -> Status:
        """Download a model onto the Ollama server (progress is reported while it downloads)."""
        return await self.backend.pull(model, Progress(ctx, every=1.0))

    async def delete(self, model: ModelName) -> Status:
        """Delete a model from the Ollama server."""
        return await self.backend.delete(model)

    async def ask_client(
        self,
        prompt: Prompt,
        ctx: Context,
        system: Annotated[str, Meta(max_length=100_000)] | None = None,
        max_tokens: Annotated[int, Meta(ge=1, le=100_000)] = 1000,
    ) -> Answer:
        """Ask the MCP client's own model (sampling): works with no model server. The client may show the
        request to its user first. Needs a client that supports sampling."""
        if max_tokens > self.settings.max_tokens:
            raise ToolError(f"max_tokens is at most {self.settings.max_tokens} on this service")
        result = await ctx.sample(
            [{"role": "user", "content": {"type": "text", "text": prompt}}],
            max_tokens=max_tokens,
            system_prompt=system,
        )
        content = result.get("content")
        blocks = content if isinstance(content, list) else [content]
        text = "".join(
            str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text"
        )
        return Answer(model=str(result.get("model", "")), text=text, stop_reason=result.get("stopReason"))


def base_url(settings: AiSettings) -> str:
    url = settings.url.rstrip("/")
    if settings.backend == "openai" and url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def build(settings: AiSettings, options: ServiceOptions) -> Service:
    """The ai service: ask_client always; the model-server tools when a URL is configured (pull/delete with admin)."""
    if settings.url and not settings.url.startswith(("http://", "https://")):
        raise ValueError(f"[ai] url must be http:// or https://, got {settings.url!r}")
    tools = AiTools(settings)
    svc = Service(
        options.name,
        VERSION,
        "Language models: the MCP client's own model through sampling (ask_client)"
        + (f", and the models of the {settings.backend} server at {settings.url}" if settings.url else "")
        + ".",
        title="AI models",
    )
    svc.tool(tools.ask_client, title="Ask the Client's Model", read_only=True, open_world=True)
    if not settings.url:
        return svc

    @svc.lifespan
    @contextlib.asynccontextmanager
    async def connect(runtime: ServiceRuntime) -> AsyncIterator[None]:
        """One HTTP client for the configured model server, for the life of this instance."""
        async with Upstream.open(settings, base_url(settings)) as http:
            tools.attach(OllamaBackend(http) if settings.backend == "ollama" else OpenAIBackend(http))
            try:
                yield
            finally:
                tools.attach(None)

    svc.tool(tools.generate, title="Generate", read_only=True, open_world=True)
    svc.tool(tools.chat, title="Chat", read_only=True, open_world=True)
    svc.tool(tools.embed, title="Embed", read_only=True, open_world=True)
    svc.tool(tools.list_models, title="List Models", read_only=True, open_world=True)
    svc.tool(tools.show_model, title="Show Model", read_only=True, open_world=True)
    if settings.admin:
        svc.tool(tools.pull, title="Pull Model", destructive=False, idempotent=True, open_world=True)
        svc.tool(tools.delete, title="Delete Model", destructive=True, idempotent=True, open_world=True)
    return svc

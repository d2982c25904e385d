"""`load_embedder(settings)`: the embedder the settings name, not yet loaded.

Enter it (`async with load_embedder(s) as embedder:`) in a service lifespan: the ONNX model loads
in a worker thread, the HTTP embedders open their client (and probe the dimension)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

from .errors import EmbedderUnavailable
from .settings import EmbedderSettings


class ManagedEmbedder(Protocol):
    """An `Embedder` that is also the async context manager owning its model or client."""

    @property
    def model(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def load_embedder(settings: EmbedderSettings | None = None) -> ManagedEmbedder:
    """The embedder for `settings` (default: the offline ONNX MiniLM). Raises EmbedderUnavailable
    when the settings are incomplete; a missing extra or an altered model file is reported on entry."""
    settings = settings or EmbedderSettings()
    if settings.kind == "onnx":
        from .onnx import OnnxEmbedder

        return OnnxEmbedder()
    from .remote import OllamaEmbedder, OpenAIEmbedder

    if settings.kind == "openai":
        return OpenAIEmbedder(settings)
    if settings.kind == "ollama":
        return OllamaEmbedder(settings)
    raise EmbedderUnavailable(f"unknown embedder kind {settings.kind!r}; use onnx, openai or ollama")

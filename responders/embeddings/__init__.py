"""One text embedder, shared by `vector`, `search`'s hybrid mode and `memory`'s semantic search.

The interface is `Embedder`; `load_embedder(settings)` picks the implementation the settings
name (the offline ONNX MiniLM by default; an OpenAI-compatible `/v1/embeddings` URL; Ollama's
`/api/embed`). Every collection or index stores `model` and `dimension`, and refuses a query or
an upsert made with a different embedder, naming both.

    async with load_embedder(settings.embedder) as embedder:   # in a service lifespan
        vectors = await embedder.embed(["some text"])           # unit vectors, embedder.dimension wide

The ONNX model (extra `vector`) loads and runs in a worker thread; tests share one loaded
`onnx.OnnxModel` per session through `OnnxEmbedder(loaded=...)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .errors import EmbedderError as EmbedderError
from .errors import EmbedderFailed as EmbedderFailed
from .errors import EmbedderUnavailable as EmbedderUnavailable
from .factory import ManagedEmbedder as ManagedEmbedder
from .factory import load_embedder as load_embedder
from .settings import EmbedderSettings as EmbedderSettings


class Embedder(Protocol):
    """Turns texts into unit-length vectors. Owned by a service lifespan (`async with`)."""

    @property
    def model(self) -> str:
        """A stable name of the model and its variant, stored with every collection (e.g. `all-MiniLM-L6-v2/int8-onnx`)."""
        ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; never blocks the event loop (CPU work runs in a worker thread)."""
        ...


__all__ = [
    "Embedder",
    "EmbedderError",
    "EmbedderFailed",
    "EmbedderSettings",
    "EmbedderUnavailable",
    "ManagedEmbedder",
    "load_embedder",
]

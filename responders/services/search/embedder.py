"""Opening the shared embedder (responders.embeddings) for hybrid mode, inside the service's lifespan."""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import AsyncIterator
from typing import Any, cast

from ...embeddings import Embedder, EmbedderSettings


@contextlib.asynccontextmanager
async def open_embedder(settings: EmbedderSettings) -> AsyncIterator[Embedder]:
    """The embedder `settings` names, owned for the life of the block.

    Raises ValueError (refusing to start) when this installation has no embedder implementation."""
    module = importlib.import_module("responders.embeddings")
    load: Any = getattr(module, "load_embedder", None)
    if load is None:
        raise ValueError(
            "hybrid = true needs the shared embedder (responders.embeddings.load_embedder), which this installation lacks"
        )
    made = load(settings)
    if inspect.isawaitable(made):
        made = await made
    if hasattr(made, "__aenter__"):
        async with made as entered:
            yield cast(Embedder, entered if entered is not None else made)
    else:
        yield cast(Embedder, made)

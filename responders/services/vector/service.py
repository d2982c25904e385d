"""The `vector` Service object: its lifespan owns the embedder and the Qdrant client.

Where the store lives: `[vector] url` (a Qdrant server, any number of instances) or the embedded
store under `[vector] path` (default `<state_dir>/qdrant`), which one process owns: more than one
instance, or a second process on the same directory, is refused at start with a sentence that
points to server mode (`StoreLocked`, a ValueError, so `serve` reports it and exits 2).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from ...embeddings import Embedder, EmbedderError, load_embedder
from ...errors import ToolError
from ...plugin import ServiceOptions, ServiceRuntime
from ...service import Service
from .errors import SERVER_HINT, NoCollection
from .settings import VectorSettings
from .store import Store, check_lock, open_store

log = logging.getLogger(__name__)

VERSION: Final = "0.1.0"


def store_path(settings: VectorSettings, options: ServiceOptions) -> Path:
    return Path(settings.path).expanduser() if settings.path else options.state_dir / "qdrant"


class VectorService(Service):
    """The vector Service; `attach` (its lifespan) binds it to the embedder and the store."""

    def __init__(self, settings: VectorSettings, options: ServiceOptions) -> None:
        super().__init__(
            options.name,
            VERSION,
            "Semantic memory and vector search on Qdrant: store and find text by meaning, "
            "manage collections and points, filter on payloads.",
            title="Vector store (Qdrant)",
            instructions=(
                "store(information, metadata) remembers a text; find(query) returns the stored texts closest in "
                "meaning. The raw tools (upsert_points, search_points, scroll, ...) work on vectors and payloads. "
                "Filters are {must|should|must_not: [{key, match|match_any|match_except|range|is_empty} | nested group]}."
            ),
        )
        self.settings = settings
        self.path = store_path(settings, options)
        self._store: Store | None = None
        self._embedder: Embedder | None = None
        self._given: Embedder | None = None
        if not settings.url:
            if options.instances > 1:
                raise ValueError(
                    f"the embedded Qdrant store {self.path} is owned by one process, so --instances {options.instances} "
                    f"cannot share it; {SERVER_HINT}"
                )
            check_lock(self.path)
        self.lifespan(self.attach)

    def use_embedder(self, embedder: Embedder) -> None:
        """Use this embedder (already loaded, owned by the caller) instead of loading one from the settings."""
        self._given = embedder

    @contextlib.asynccontextmanager
    async def attach(self, runtime: ServiceRuntime | None = None) -> AsyncIterator[None]:
        """Load the embedder (a worker thread) and open the store; close both after the drain."""
        async with contextlib.AsyncExitStack() as stack:
            embedder = self._given
            if embedder is None:
                try:
                    embedder = await stack.enter_async_context(load_embedder(self.settings.embedder))
                except EmbedderError as exc:
                    raise ValueError(str(exc)) from exc
            store = await stack.enter_async_context(open_store(self.settings, self.path))
            self._embedder, self._store = embedder, store
            log.info(
                "vector: %s store %s, embedder %s",
                "embedded" if store.local else "server",
                store.where,
                embedder.model,
            )
            try:
                yield
            finally:
                self._embedder, self._store = None, None

    def store(self) -> Store:
        if self._store is None:
            raise ToolError("the vector service is not connected to its store yet")
        return self._store

    def embedder(self) -> Embedder:
        if self._embedder is None:
            raise ToolError("the vector service has not loaded its embedder yet")
        return self._embedder

    def collection(self, name: str | None) -> str:
        """The collection a call names, else the configured default; NoCollection when neither."""
        chosen = name or self.settings.collection
        if not chosen:
            raise NoCollection()
        return chosen

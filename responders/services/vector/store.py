"""The Qdrant side of the vector service: one synchronous `QdrantClient` (embedded or server),
every call made in a worker thread inside `map_qdrant_errors`.

Embedded (local) mode runs in Python and would block the event loop (measured: an
`AsyncQdrantClient(path=...)` lets the loop tick 0 times during a search), so all calls go
through one worker thread, one at a time; server mode allows 8 at once. `open_store` owns the
client: it opens it in a thread (local mode loads every point into memory) and closes it on exit.

Each text collection records the embedder it was made for in its metadata
(`mcp_nats_embedder: {model, dimension, vector}`); `text_vector` refuses another embedder.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from ...embeddings import Embedder, EmbedderError
from .errors import BackendFailed, CollectionMissing, EmbedderMismatch, StoreLocked, map_qdrant_errors
from .outputs import CollectionInfo, EmbedderInfo, VectorParams
from .settings import VectorSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
META_KEY: Final = "mcp_nats_embedder"
SERVER_CONCURRENCY: Final = 8


def vector_name(model: str) -> str:
    """The named vector of text collections: mcp-server-qdrant's `fast-<model>` for the same MiniLM,
    so collections it made are read and written as its own tools do."""
    if model == "all-MiniLM-L6-v2-onnx-int8":
        return "fast-all-minilm-l6-v2"
    return re.sub(r"[^a-z0-9.-]+", "-", model.lower().split("/")[-1]).strip("-") or "text"


class Store:
    """Qdrant calls for the tools; owned by `open_store`."""

    def __init__(self, client: Any, *, local: bool, where: str) -> None:
        from qdrant_client.http import models

        self.client = client
        self.models = models
        self.local = local
        self.where = where
        import anyio  # here, not at import: the plugin module must import without the extra (it names the extra)

        self._limiter = anyio.CapacityLimiter(1 if local else SERVER_CONCURRENCY)
        self._checked: dict[str, EmbedderInfo] = {}

    async def run(self, fn: Callable[..., T], *args: Any, collection: str | None = None, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in the worker thread; Qdrant's exceptions become VectorError sentences."""
        import anyio.to_thread

        with map_qdrant_errors(collection):
            return await anyio.to_thread.run_sync(
                functools.partial(fn, *args, **kwargs), limiter=self._limiter
            )

    async def list_collections(self) -> list[str]:
        reply = await self.run(self.client.get_collections)
        return sorted(c.name for c in reply.collections)

    async def exists(self, collection: str) -> bool:
        return bool(await self.run(self.client.collection_exists, collection, collection=collection))

    async def info(self, collection: str) -> CollectionInfo:
        if not await self.exists(collection):
            raise CollectionMissing(collection)
        raw = await self.run(self.client.get_collection, collection, collection=collection)
        vectors = raw.config.params.vectors
        named = vectors if isinstance(vectors, dict) else {"": vectors} if vectors is not None else {}
        meta = (raw.config.metadata or {}).get(META_KEY)
        embedder = None
        if isinstance(meta, dict):
            embedder = EmbedderInfo(
                model=str(meta.get("model")),
                dimension=int(meta.get("dimension", 0)),
                vector=str(meta.get("vector")),
            )
        return CollectionInfo(
            name=collection,
            points=raw.points_count or 0,
            status=str(getattr(raw.status, "value", raw.status)),
            vectors={k: VectorParams(size=v.size, distance=str(v.distance.value)) for k, v in named.items()},
            embedder=embedder,
        )

    async def create(
        self,
        collection: str,
        vectors: dict[str, VectorParams] | VectorParams,
        metadata: dict[str, Any] | None,
    ) -> None:
        m = self.models

        def params(p: VectorParams) -> Any:
            return m.VectorParams(size=p.size, distance=m.Distance(p.distance))

        config = {k: params(v) for k, v in vectors.items()} if isinstance(vectors, dict) else params(vectors)
        if await self.exists(collection):
            raise BackendFailed(f"collection '{collection}' already exists")
        await self.run(
            self.client.create_collection,
            collection,
            vectors_config=config,
            metadata=metadata,
            collection=collection,
        )
        self._checked.pop(collection, None)

    async def delete_collection(self, collection: str) -> bool:
        self._checked.pop(collection, None)
        if not await self.exists(collection):
            return False
        return bool(await self.run(self.client.delete_collection, collection, collection=collection))

    async def text_vector(self, collection: str, embedder: Embedder, *, create: bool) -> str:
        """The named vector to use for `embedder` in `collection`; creates the collection (with the
        embedder recorded) when `create`. Raises EmbedderMismatch naming both embedders."""
        if embedder.dimension == 0:  # an HTTP embedder learns its dimension from its first reply
            try:
                await embedder.embed(["dimension probe"])
            except EmbedderError as exc:
                raise BackendFailed(str(exc)) from exc
        current = EmbedderInfo(
            model=embedder.model, dimension=embedder.dimension, vector=vector_name(embedder.model)
        )
        known = self._checked.get(collection)
        if known is None:
            if not await self.exists(collection):
                if not create:
                    raise CollectionMissing(collection)
                meta = {
                    META_KEY: {
                        "model": current.model,
                        "dimension": current.dimension,
                        "vector": current.vector,
                    }
                }
                with contextlib.suppress(
                    BackendFailed
                ):  # another instance (server mode) created it meanwhile
                    await self.create(
                        collection,
                        {current.vector: VectorParams(size=current.dimension, distance="Cosine")},
                        meta,
                    )
            info = await self.info(collection)
            known = info.embedder
            if (
                known is None
            ):  # made elsewhere (mcp-server-qdrant, create_collection with a dimension): go by the vectors
                params = info.vectors.get(current.vector)
                if params is None or params.size != current.dimension:
                    have = ", ".join(f"'{k}' {v.size}-d" for k, v in info.vectors.items()) or "none"
                    raise EmbedderMismatch(
                        collection,
                        f"unknown (its vectors: {have})",
                        f"{current.model} ('{current.vector}' {current.dimension}-d)",
                    )
                known = current
            self._checked[collection] = known
        if (known.model, known.dimension) != (current.model, current.dimension):
            raise EmbedderMismatch(
                collection, f"{known.model} ({known.dimension}-d)", f"{current.model} ({current.dimension}-d)"
            )
        return known.vector


def _api_key(settings: VectorSettings) -> str | None:
    if not settings.api_key_env:
        return None
    key = os.environ.get(settings.api_key_env)
    if not key:
        raise ValueError(f"the environment variable {settings.api_key_env} (vector.api_key_env) is not set")
    return key


def check_lock(path: Path) -> None:
    """Refuse early (at build) when another process holds the embedded store's lock, as qdrant-client's
    `<path>/.lock` flock would at open. Raises StoreLocked."""
    lock = path / ".lock"
    if not lock.exists():
        return
    try:
        import fcntl
    except ImportError:  # Windows: qdrant-client's own lock reports it at open
        return
    with lock.open("r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLocked(str(path)) from None
        fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def open_store(settings: VectorSettings, path: Path) -> AsyncIterator[Store]:
    """The store for these settings: a Qdrant server when `url` is set, else embedded under `path`.
    Raises StoreLocked when the directory belongs to another instance; closes the client on exit."""
    import anyio
    import anyio.to_thread
    from qdrant_client import QdrantClient

    if settings.url:
        key = _api_key(settings)
        if key and settings.url.startswith("http://"):
            log.warning("vector: the Qdrant API key is sent over plain http to %s", settings.url)
        with warnings.catch_warnings():  # the same warning, raised by qdrant-client as a UserWarning
            warnings.filterwarnings("ignore", "Api key is used with an insecure connection", UserWarning)
            # check_compatibility=False: it would start an unowned thread that only warns
            client = QdrantClient(
                url=settings.url,
                api_key=key,
                timeout=max(1, int(settings.timeout)),
                prefer_grpc=False,
                check_compatibility=False,
            )
        store = Store(client, local=False, where=settings.url)
    else:

        def open_local() -> Any:
            path.mkdir(parents=True, exist_ok=True)
            check_lock(path)  # before qdrant-client, whose failed open leaks the lock file's handle
            try:
                return QdrantClient(path=str(path))
            except RuntimeError as exc:
                if "already accessed" in str(exc):
                    raise StoreLocked(str(path)) from exc
                raise

        client = await anyio.to_thread.run_sync(open_local)
        store = Store(client, local=True, where=str(path))
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(client.close)

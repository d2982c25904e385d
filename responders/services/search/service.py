"""The `search` service: full-text indices with BM25 ranking, highlights and a small query language
(query.py), fed with documents or with text files under the fs roots; hybrid (BM25 + embeddings,
fused by reciprocal rank) when started with an embedder.

The backend (SQLite FTS5 by default, OpenSearch by URL) and the embedder are owned by the lifespan;
tools are the methods of `SearchTools`, directly testable once a backend is attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Final, Literal

from msgspec import Meta

from ...context import Context
from ...embeddings import Embedder, EmbedderError, load_embedder
from ...errors import ToolError
from ...plugin import ServiceOptions, ServiceRuntime
from ...service import Service
from ..fs import Roots
from . import query as q
from .backend import FileChunks, SearchBackend, Vectors, check_index
from .crawl import Crawler
from .database import Database
from .errors import EmbedderMismatch, NoSuchIndex, map_embedder_errors
from .fts import FtsBackend, schema
from .hybrid import fuse
from .outputs import (
    CountOutput,
    DeletedOutput,
    DocId,
    Document,
    DocumentOutput,
    Field,
    Hit,
    IndexedOutput,
    IndexName,
    IndicesOutput,
    PathsOutput,
    SearchOutput,
)
from .settings import SearchSettings

log = logging.getLogger(__name__)

VERSION: Final = "0.1.0"
MAX_SIZE: Final = 100
MAX_WINDOW: Final = 10_000
HYBRID_DEPTH: Final = 50
EMBED_BATCH: Final = 64

Size = Annotated[int, Meta(ge=1, le=MAX_SIZE, description="Hits to return (at most 100)")]
From = Annotated[int, Meta(ge=0, le=MAX_WINDOW - MAX_SIZE, description="Hits to skip (for the next page)")]
Query = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=q.MAX_QUERY,
        description='Words (all must match), "a phrase", prefix*, OR, NOT or -word, parentheses; operators in capitals',
    ),
]
Patterns = Annotated[
    list[str], Meta(max_length=100, description="Glob patterns (like fs: `*.md`, `src/**/*.py`)")
]


class SearchTools:
    """The tools over one backend; `attach` binds the backend and the embedder for an instance's life."""

    def __init__(self, settings: SearchSettings, crawler: Crawler) -> None:
        self.settings = settings
        self.crawler = crawler
        self._backend: SearchBackend | None = None
        self.embedder: Embedder | None = None

    def attach(self, backend: SearchBackend, embedder: Embedder | None) -> None:
        self._backend = backend
        self.embedder = embedder

    @property
    def backend(self) -> SearchBackend:
        if self._backend is None:
            raise ToolError("the search service is not connected to its index yet")
        return self._backend

    async def _vectors(self, texts: list[str]) -> Vectors | None:
        if self.embedder is None or not texts:
            return None
        values: list[list[float]] = []
        with map_embedder_errors():
            for i in range(0, len(texts), EMBED_BATCH):
                values.extend(await self.embedder.embed(texts[i : i + EMBED_BATCH]))
        return Vectors(model=self.embedder.model, dimension=self.embedder.dimension, values=values)

    # -- writing ------------------------------------------------------------------------------

    async def index_documents(
        self,
        index: IndexName,
        documents: Annotated[
            list[Document],
            Meta(
                min_length=1, max_length=1000, description="Documents: id, text, optional title and metadata"
            ),
        ],
    ) -> IndexedOutput:
        """Add documents to an index (created on first use), replacing any with the same id. The whole
        batch becomes visible at once. Title matches weigh more than text matches."""
        check_index(index)
        if len({d.id for d in documents}) != len(documents):
            raise ToolError("two documents in the batch have the same id")
        vectors = await self._vectors([f"{d.title}\n{d.text}" if d.title else d.text for d in documents])
        n = await self.backend.index_documents(index, documents, vectors)
        return IndexedOutput(index=index, indexed=n, embedded=vectors is not None)

    async def index_paths(
        self,
        index: IndexName,
        paths: Annotated[
            list[str],
            Meta(
                min_length=1,
                max_length=100,
                description="Files or directories inside the allowed directories",
            ),
        ],
        include: Patterns | None = None,
        exclude: Patterns | None = None,
        ctx: Context | None = None,
    ) -> PathsOutput:
        """Index the text files under `paths` (inside the allowed directories, as the fs service sees them),
        cut into chunks of about 2,000 characters on line boundaries; each chunk is a document with id
        `<path>#<n>` and metadata {path, chunk, lines}. Files unchanged since the last call (same
        modification time and size) are skipped, changed ones re-indexed, deleted ones removed.
        `include` keeps only matching files, `exclude` leaves out files and directories."""
        check_index(index)
        starts = await asyncio.to_thread(self.crawler.resolve, paths)
        known = await self.backend.file_states(index)
        plan = await asyncio.to_thread(self.crawler.plan, starts, include or [], exclude or [], known)
        changed: list[FileChunks] = []
        for i, f in enumerate(plan.changed):
            vectors = await self._vectors([d.text for d in f.docs])
            changed.append(
                FileChunks(path=f.path, mtime_ns=f.mtime_ns, size=f.size, docs=f.docs, vectors=vectors)
            )
            if ctx is not None and self.embedder is not None:
                await ctx.report_progress(i + 1, len(plan.changed), f"embedded {f.path}")
        chunks = (
            await self.backend.apply_files(index, changed, plan.removed) if changed or plan.removed else 0
        )
        return PathsOutput(
            index=index,
            files_indexed=len(changed),
            files_unchanged=plan.unchanged,
            files_removed=len(plan.removed),
            chunks=chunks,
            skipped=plan.skipped[:100],
        )

    async def delete_documents(
        self, index: IndexName, ids: Annotated[list[DocId], Meta(min_length=1, max_length=10_000)]
    ) -> DeletedOutput:
        """Delete documents by id; returns how many existed."""
        return DeletedOutput(
            index=index, deleted=await self.backend.delete_documents(check_index(index), ids)
        )

    async def delete_index(self, index: IndexName) -> DeletedOutput:
        """Delete an index and every document in it."""
        if not await self.backend.delete_index(check_index(index)):
            raise NoSuchIndex(index)
        return DeletedOutput(index=index, deleted=1)

    # -- reading ------------------------------------------------------------------------------

    async def search(
        self,
        index: IndexName,
        query: Query,
        size: Size = 10,
        from_: From = 0,
        fields: Annotated[
            list[Field], Meta(max_length=2, description="Fields to match (default: title and text)")
        ]
        | None = None,
        highlight: Annotated[bool, Meta(description="Return matching fragments with <mark>…</mark>")] = True,
        mode: Annotated[
            Literal["bm25", "hybrid"],
            Meta(description="bm25: by words; hybrid: words and meaning fused (needs an embedder)"),
        ] = "bm25",
    ) -> SearchOutput:
        """Search an index, best matches first (BM25; title matches weigh more). Query syntax: words
        (all must match), "a phrase", prefix*, OR, NOT or -word, parentheses. Returns hits with id,
        score, title, highlighted fragments and metadata; page with `from`."""
        check_index(index)
        node = q.parse(query)
        if mode == "hybrid":
            return await self._hybrid(index, node, size, from_, fields or [], highlight)
        page = await self.backend.search(
            index, node, size=size, offset=from_, fields=fields or [], highlight=highlight
        )
        return SearchOutput(index=index, total=page.total, hits=page.hits)

    async def _hybrid(
        self, index: str, node: q.Node, size: int, offset: int, fields: Sequence[Field], highlight: bool
    ) -> SearchOutput:
        if self.embedder is None:
            raise EmbedderMismatch(
                "mode=hybrid needs a search service started with hybrid = true (an embedder)"
            )
        depth = max(HYBRID_DEPTH, offset + size)
        lexical = await self.backend.search(
            index, node, size=depth, offset=0, fields=fields, highlight=highlight
        )
        with map_embedder_errors():
            (vector,) = await self.embedder.embed([" ".join(q.positive_terms(node))])
        semantic = await self.backend.nearest(index, vector, self.embedder.model, depth)
        fused = fuse([h.id for h in lexical.hits], [doc_id for doc_id, _ in semantic])
        window = fused[offset : offset + size]
        by_id = {h.id: h for h in lexical.hits}
        missing = [doc_id for doc_id, _ in window if doc_id not in by_id]
        docs = {d.id: d for d in await self.backend.get_documents(index, missing)} if missing else {}
        hits: list[Hit] = []
        for doc_id, score in window:
            if doc_id in by_id:
                h = by_id[doc_id]
                hits.append(
                    Hit(
                        id=doc_id,
                        score=round(score, 6),
                        title=h.title,
                        highlights=h.highlights,
                        excerpt=h.excerpt,
                        metadata=h.metadata,
                    )
                )
            elif doc_id in docs:
                d = docs[doc_id]
                hits.append(
                    Hit(
                        id=doc_id,
                        score=round(score, 6),
                        title=d.title,
                        excerpt=d.text[:300],
                        metadata=d.metadata,
                    )
                )
        return SearchOutput(index=index, total=len(fused), hits=hits, mode="hybrid")

    async def count(self, index: IndexName, query: Query | None = None) -> CountOutput:
        """How many documents an index holds, or how many match `query`."""
        node = q.parse(query) if query is not None else None
        return CountOutput(index=index, count=await self.backend.count(check_index(index), node))

    async def list_indices(self) -> IndicesOutput:
        """Every index with its document count (and its embedding model, for hybrid indices)."""
        return IndicesOutput(indices=await self.backend.list_indices())

    async def get_document(self, index: IndexName, id: DocId) -> DocumentOutput:
        """One document by id, whole."""
        found = await self.backend.get_documents(check_index(index), [id])
        if not found:
            raise ToolError(f"no document {id!r} in index {index!r}")
        return DocumentOutput(index=index, document=found[0])


def db_path(settings: SearchSettings, options: ServiceOptions) -> Path:
    return Path(settings.path).expanduser() if settings.path else options.state_dir / "search" / "search.db"


@contextlib.asynccontextmanager
async def sqlite_backend(settings: SearchSettings, options: ServiceOptions) -> AsyncIterator[SearchBackend]:
    async with Database.open(
        db_path(settings, options), busy_timeout=settings.busy_timeout, schema=schema
    ) as db:
        yield FtsBackend(db, title_weight=settings.title_weight)


def build(settings: SearchSettings, options: ServiceOptions) -> Service:
    """The search service for these settings. Raises ValueError when no root is usable or the backend is misconfigured."""
    if settings.backend == "opensearch" and not settings.url:
        raise ValueError("backend = 'opensearch' needs url (e.g. --url https://127.0.0.1:9200)")
    if settings.backend == "opensearch" and settings.hybrid:
        raise ValueError(
            "hybrid = true works with the sqlite backend only (OpenSearch would need its k-NN plugin)"
        )
    crawler = Crawler(
        Roots(settings.roots),
        chunk_chars=settings.chunk_chars,
        max_file_bytes=settings.max_file_bytes,
        max_files=settings.max_files,
    )
    tools = SearchTools(settings, crawler)
    svc = Service(
        options.name,
        VERSION,
        "Full-text search over named indices (BM25, highlights, phrases, prefixes, boolean queries), "
        "fed with documents or with text files under the allowed directories.",
        title="Search",
        instructions=(
            "index_documents or index_paths first, then search. Query syntax: words (all must match), "
            '"a phrase", prefix*, OR, NOT, parentheses.'
        ),
    )

    @svc.lifespan
    @contextlib.asynccontextmanager
    async def attach(runtime: ServiceRuntime) -> AsyncIterator[None]:
        """Open the backend (and the embedder with hybrid = true) for the life of this instance."""
        async with contextlib.AsyncExitStack() as stack:
            if settings.backend == "opensearch":
                from .opensearch import opensearch_backend

                backend: SearchBackend = await stack.enter_async_context(opensearch_backend(settings))
            else:
                backend = await stack.enter_async_context(sqlite_backend(settings, options))
            embedder: Embedder | None = None
            if settings.hybrid:
                try:  # the ONNX model loads in a worker thread; a missing extra is a sentence naming it
                    embedder = await stack.enter_async_context(load_embedder(settings.embedder))
                except EmbedderError as exc:
                    raise ValueError(str(exc)) from exc
            tools.attach(backend, embedder)
            yield

    svc.tool(tools.search, title="Search", read_only=True)
    svc.tool(tools.count, title="Count", read_only=True)
    svc.tool(tools.list_indices, title="List Indices", read_only=True)
    svc.tool(tools.get_document, title="Get Document", read_only=True)
    if settings.backend == "opensearch":
        from .opensearch import register_opensearch_tools

        register_opensearch_tools(svc, tools, settings)
    if not settings.read_only:
        svc.tool(tools.index_documents, title="Index Documents", destructive=True, idempotent=True)
        svc.tool(tools.index_paths, title="Index Paths", destructive=True, idempotent=True)
        svc.tool(tools.delete_documents, title="Delete Documents", destructive=True, idempotent=True)
        svc.tool(tools.delete_index, title="Delete Index", destructive=True, idempotent=True)
    return svc

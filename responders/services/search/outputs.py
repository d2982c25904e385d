"""The search service's tool arguments and results (msgspec Structs: their JSON Schemas are the tools')."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

MAX_TEXT = 1_000_000

DocId = Annotated[
    str, Meta(min_length=1, max_length=512, description="The document's id, unique in its index")
]
IndexName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="Index name: a-z, 0-9, '-', '_', '.' (created on first write)",
    ),
]
Field = Literal["title", "text"]


class Document(Struct, kw_only=True, frozen=True):
    id: DocId
    text: Annotated[str, Meta(max_length=MAX_TEXT)]
    title: Annotated[str, Meta(max_length=10_000)] = ""
    metadata: dict[str, Any] | None = None


class Hit(Struct, kw_only=True, omit_defaults=True):
    id: str
    score: float
    title: str = ""
    highlights: dict[str, list[str]] | UnsetType = UNSET
    """Fragments with the matched terms in <mark>…</mark>, per field (with highlight=true)."""
    excerpt: str | UnsetType = UNSET
    """The start of the text (with highlight=false, or a hit found only by meaning in hybrid mode)."""
    metadata: dict[str, Any] | None = None


class SearchOutput(Struct, kw_only=True):
    index: str
    total: int
    """How many documents match (BM25); hybrid mode adds the nearest by meaning."""
    hits: list[Hit]
    mode: str = "bm25"

    def __mcp_text__(self) -> str:
        shown = f"{len(self.hits)} of {self.total}" if self.hits else "none"
        lines = [f"{self.total} match(es) in {self.index!r}, showing {shown}:"]
        for h in self.hits:
            head = f"- {h.id} (score {h.score:.3f})" + (f" {h.title}" if h.title else "")
            lines.append(head)
            if h.highlights is not UNSET:
                lines.extend(f"    {f}: {' … '.join(frags)}" for f, frags in h.highlights.items())
            if h.excerpt is not UNSET:
                lines.append(f"    {h.excerpt}")
        return "\n".join(lines)


class CountOutput(Struct, kw_only=True):
    index: str
    count: int


class IndexInfo(Struct, kw_only=True, omit_defaults=True):
    name: str
    documents: int
    embedder: str | None = None
    """The embedding model of a hybrid index (its name and dimension), else absent."""
    dimension: int | None = None


class IndicesOutput(Struct, kw_only=True):
    indices: list[IndexInfo]


class IndexedOutput(Struct, kw_only=True):
    index: str
    indexed: int
    embedded: bool = False


class PathsOutput(Struct, kw_only=True):
    index: str
    files_indexed: int
    """Files new or changed since the last run (their chunks replaced)."""
    files_unchanged: int
    files_removed: int
    """Files indexed before under these paths that are gone now (their chunks deleted)."""
    chunks: int
    """Chunks written by this call."""
    skipped: list[str]
    """Why files were left out (binary, too large, outside the roots, walk limits)."""


class DocumentOutput(Struct, kw_only=True):
    index: str
    document: Document


class DeletedOutput(Struct, kw_only=True):
    index: str
    deleted: int


class RawOutput(Struct, kw_only=True):
    """An OpenSearch response passed through (raw_query, get_mapping)."""

    index: str
    response: dict[str, Any]

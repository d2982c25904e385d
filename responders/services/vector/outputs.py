"""What the vector tools return (structuredContent) and their text forms; and the point input."""

from __future__ import annotations

import json
from typing import Annotated, Any

from msgspec import Meta, Struct

PointId = Annotated[int | str, Meta(description="An unsigned integer or a UUID string")]
Vector = Annotated[list[float], Meta(min_length=1, max_length=65536)]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class PointInput(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A point to upsert: its id, its vector (a list, or {vector name: list} for named vectors) and payload."""

    id: PointId
    vector: Vector | dict[str, Vector]
    payload: dict[str, Any] | None = None


class Entry(Struct, kw_only=True):
    """A `find` result: the stored text, its metadata, the point id and the similarity score."""

    id: PointId
    score: float
    document: str
    metadata: dict[str, Any] | None = None


class FindResult(Struct, kw_only=True):
    query: str
    collection: str
    entries: list[Entry]

    def __mcp_text__(self) -> str:
        # mcp-server-qdrant's text, so prompts written for its qdrant-find read the same
        if not self.entries:
            return f"No information found for the query '{self.query}'"
        lines = [f"Results for the query '{self.query}'"]
        for e in self.entries:
            meta = _json(e.metadata) if e.metadata else ""
            lines.append(f"<entry><content>{e.document}</content><metadata>{meta}</metadata></entry>")
        return "\n".join(lines)


class Stored(Struct, kw_only=True):
    id: str
    collection: str
    information: str

    def __mcp_text__(self) -> str:
        return f"Remembered: {self.information} in collection {self.collection}"


class Point(Struct, kw_only=True, omit_defaults=True):
    id: PointId
    score: float | None = None
    payload: dict[str, Any] | None = None
    vector: list[float] | dict[str, list[float]] | None = None


class Points(Struct, kw_only=True, omit_defaults=True):
    points: list[Point]
    next_offset: PointId | None = None
    """scroll: pass it as `offset` for the next page (absent on the last page)."""


class Collections(Struct, kw_only=True):
    collections: list[str]


class VectorParams(Struct, kw_only=True):
    size: int
    distance: str


class EmbedderInfo(Struct, kw_only=True):
    model: str
    dimension: int
    vector: str
    """The named vector `store` and `find` use."""


class CollectionInfo(Struct, kw_only=True, omit_defaults=True):
    name: str
    points: int
    status: str
    vectors: dict[str, VectorParams]
    """Named vectors; the unnamed vector of a single-vector collection is under ""."""
    embedder: EmbedderInfo | None = None
    """The embedder the collection was made for (`store`/`find`); absent for a raw-vector collection."""


class Count(Struct, kw_only=True):
    count: int


class Done(Struct, kw_only=True):
    status: str
    message: str

    def __mcp_text__(self) -> str:
        return self.message

"""The port every search backend implements (SQLite FTS5 here, OpenSearch for scale).

Backends take parsed queries (query.py), never query strings, and validated index names; the
tool layer (service.py) owns argument checks, size caps, hybrid fusion and path rules, so each
backend is storage and ranking only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import BadIndexName
from .outputs import Document, Field, Hit, IndexInfo
from .query import Node

INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")


def check_index(name: str) -> str:
    """The name itself when it is allowed, else BadIndexName."""
    if not INDEX_NAME.match(name):
        raise BadIndexName(name)
    return name


@dataclass(frozen=True)
class Vectors:
    """Embeddings that go with a batch of documents, in order, and the model that made them."""

    model: str
    dimension: int
    values: Sequence[Sequence[float]]


@dataclass(frozen=True)
class FileChunks:
    """A file's chunks as documents, and the modification stamp they were cut from."""

    path: str
    mtime_ns: int
    size: int
    docs: list[Document]
    vectors: Vectors | None = None


@dataclass(frozen=True)
class Page:
    total: int
    hits: list[Hit] = field(default_factory=list)


class SearchBackend(Protocol):
    """Storage and BM25 ranking for named indices. Methods raise the search errors (errors.py) only."""

    kind: str

    async def list_indices(self) -> list[IndexInfo]: ...

    async def index_documents(self, index: str, docs: Sequence[Document], vectors: Vectors | None) -> int:
        """Insert or replace documents by id (creating the index); all or none become visible."""
        ...

    async def search(
        self, index: str, query: Node, *, size: int, offset: int, fields: Sequence[Field], highlight: bool
    ) -> Page: ...

    async def count(self, index: str, query: Node | None) -> int: ...

    async def get_documents(self, index: str, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the order given; missing ids are left out."""
        ...

    async def delete_documents(self, index: str, ids: Sequence[str]) -> int: ...

    async def delete_index(self, index: str) -> bool: ...

    async def file_states(self, index: str) -> dict[str, tuple[int, int]]:
        """Path -> (mtime_ns, size) of every file `index_paths` put in the index (empty for a new index)."""
        ...

    async def apply_files(self, index: str, changed: Sequence[FileChunks], removed: Sequence[str]) -> int:
        """Replace the chunks of `changed` files and delete those of `removed` ones, in one batch; returns chunks written."""
        ...

    async def nearest(
        self, index: str, vector: Sequence[float], model: str, k: int
    ) -> list[tuple[str, float]]:
        """The k document ids nearest `vector` (cosine), best first; EmbedderMismatch if the index has other vectors."""
        ...

"""Errors of the search service. Each is a ToolError: the model reads the sentence and can act on it.

ToolError
 └── SearchError            base
      ├── NoSuchIndex       the index does not exist
      ├── BadQuery          the query string cannot be parsed
      ├── BadIndexName      the index name is not allowed
      ├── EmbedderMismatch  the index was embedded with another model, or none
      ├── EmbeddingFailed   the embedder failed on a batch (remote endpoint down, bad reply)
      └── BackendFailed     the backend (SQLite file, OpenSearch server) failed
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ...embeddings import EmbedderError
from ...errors import ToolError


class SearchError(ToolError):
    """Base of the search service's errors."""


class NoSuchIndex(SearchError):
    """Raised when a tool names an index that does not exist."""

    def __init__(self, index: str) -> None:
        super().__init__(f"no index named {index!r}; list_indices shows the existing ones")
        self.index = index


class BadIndexName(SearchError):
    """Raised when an index name is not 1-64 of a-z, 0-9, '-', '_', '.' starting with a letter or digit."""

    def __init__(self, index: str) -> None:
        super().__init__(
            f"bad index name {index[:80]!r}: use 1-64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
        )


class BadQuery(SearchError):
    """Raised when a query string cannot be parsed; says where."""

    def __init__(self, query: str, reason: str) -> None:
        super().__init__(f"cannot parse the query {query[:200]!r}: {reason}")


class EmbedderMismatch(SearchError):
    """Raised when hybrid search or embedding writes meet an index embedded by another model (or none)."""


class BackendFailed(SearchError):
    """Raised when the storage backend fails (disk full, locked past the busy timeout, server error)."""


class EmbeddingFailed(SearchError):
    """Raised when the embedder fails on a batch; carries the embedder's sentence."""


@contextlib.contextmanager
def map_embedder_errors() -> Iterator[None]:
    """The shared embedder's errors as the search service's (the one place that sees them)."""
    try:
        yield
    except EmbedderError as exc:
        raise EmbeddingFailed(f"the embedder failed: {exc}") from exc

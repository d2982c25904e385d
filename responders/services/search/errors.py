"""Errors of the search service. Each is a ToolError: the model reads the sentence and can act on it.

ToolError
 └── SearchError            base
      ├── NoSuchIndex       the index does not exist
      ├── BadQuery          the query string cannot be parsed
      ├── BadIndexName      the index name is not allowed
      ├── EmbedderMismatch  the index was embedded with another model, or none
      └── BackendFailed     the backend (SQLite file, OpenSearch server) failed
"""

from __future__ import annotations

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

"""Errors of the vector service, and the one boundary where qdrant-client's exceptions are mapped.

ToolError                    (responders.errors) -> a result with isError: true
 └── VectorError             base of this service's tool errors
      ├── InvalidFilter      a filter condition is malformed (names its path)
      ├── InvalidPoint       a point id or vector is malformed
      ├── NoCollection       no `collection` argument and no default collection configured
      ├── CollectionMissing  the collection does not exist
      ├── EmbedderMismatch   the collection was made with another embedder (names both)
      └── BackendFailed      Qdrant refused or failed (its reason, without a traceback)
StoreLocked (ValueError)     the embedded store's directory is owned by another instance (at start)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ...errors import ToolError

log = logging.getLogger(__name__)

SERVER_HINT = "run a Qdrant server and start every instance with --url (server mode) instead"


class VectorError(ToolError):
    """Base of the vector service's tool errors; the message is one sentence."""


class InvalidFilter(VectorError):
    """Raised when a filter condition is malformed, before Qdrant sees it."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"invalid filter: {where} {problem}")


class InvalidPoint(VectorError):
    """Raised when a point id or vector is malformed, before Qdrant sees it."""


class NoCollection(VectorError):
    """Raised when a tool is called without `collection` and the service has no default collection."""

    def __init__(self) -> None:
        super().__init__(
            "no collection given and no default collection configured; pass 'collection' or start with --collection NAME"
        )


class CollectionMissing(VectorError):
    """Raised when the named collection does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"collection '{name}' does not exist; list_collections shows the existing ones")


class EmbedderMismatch(VectorError):
    """Raised when a collection's stored embedder differs from the service's (model or dimension)."""

    def __init__(self, collection: str, stored: str, current: str) -> None:
        super().__init__(
            f"collection '{collection}' was made with the embedder {stored}, but this service embeds with {current}; "
            "vectors of different embedders cannot be compared: use another collection or configure the same embedder"
        )


class BackendFailed(VectorError):
    """Raised when Qdrant refuses or fails a request; the message is Qdrant's reason."""


class StoreLocked(ValueError):
    """Raised at start when the embedded store's directory is already owned by another instance."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"the embedded Qdrant store {path} is already owned by another instance (one process per directory); {SERVER_HINT}"
        )


@contextlib.contextmanager
def map_qdrant_errors(collection: str | None = None) -> Iterator[None]:
    """qdrant-client's exceptions as VectorError sentences: the one place that knows them."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except VectorError:
        raise
    except UnexpectedResponse as exc:  # server mode: an HTTP error status
        if exc.status_code == 404 and collection is not None:
            raise CollectionMissing(collection) from exc
        reason = (exc.content or b"").decode("utf-8", "replace")[:300] or exc.reason_phrase
        raise BackendFailed(f"Qdrant answered HTTP {exc.status_code}: {reason}") from exc
    except ResponseHandlingException as exc:  # server mode: connection refused, timeout
        raise BackendFailed(f"cannot reach the Qdrant server: {exc.source or exc}") from exc
    except ValueError as exc:  # local mode reports a missing collection or a bad request this way
        text = str(exc)
        if collection is not None and "not found" in text.lower():
            raise CollectionMissing(collection) from exc
        raise BackendFailed(f"Qdrant refused the request: {text[:300]}") from exc
    except (AssertionError, KeyError, TypeError) as exc:  # local mode's checks on vector names and sizes
        log.debug("qdrant local mode refused a request", exc_info=True)
        raise BackendFailed(f"Qdrant refused the request: {str(exc)[:300] or type(exc).__name__}") from exc

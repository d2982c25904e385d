"""Errors of the embedders.

EmbedderError            base; the message is one sentence a user or a model can act on
 ├── EmbedderUnavailable the embedder cannot be loaded (extra not installed, model file altered)
 └── EmbedderFailed      an embedding request failed (HTTP error, timeout, bad reply)
"""

from __future__ import annotations


class EmbedderError(Exception):
    """Base of the embedders' errors."""


class EmbedderUnavailable(EmbedderError):
    """Raised when the configured embedder cannot be loaded; names what is missing and how to get it."""


class EmbedderFailed(EmbedderError):
    """Raised when an embedding request to a remote endpoint fails; names the endpoint and the reason."""

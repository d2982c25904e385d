"""The `[vector]` settings section (`MCP_NATS_VECTOR_<KEY>`; `serve vector` flags)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field

from ...embeddings import EmbedderSettings


class VectorSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    """A Qdrant server (http://host:6333); empty: the embedded store under `path`."""
    api_key_env: str = ""
    """The environment variable that holds the Qdrant server's API key (never the key itself)."""
    path: str = ""
    """The embedded store's directory; empty: `<state_dir>/qdrant`. One process owns it."""
    collection: str = ""
    """The default collection: tools called without `collection` use it."""
    read_only: bool = False
    """Register only the read tools (store, upsert, set_payload, delete... are not offered at all)."""
    search_limit: Annotated[int, Meta(ge=1, le=100)] = 10
    """How many entries `find` returns when the call gives no limit (mcp-server-qdrant's QDRANT_SEARCH_LIMIT)."""
    timeout: Annotated[float, Meta(gt=0)] = 30.0
    """Seconds a request to a Qdrant server may take."""
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    """`[vector.embedder]`: kind = "onnx" (default, offline), "openai" or "ollama", with url, model, api_key_env."""

"""The embedder part of a service's settings section (`[vector] embedder = {...}` and the like)."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct


class EmbedderSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    kind: Literal["onnx", "openai", "ollama"] = "onnx"
    """"onnx": the offline all-MiniLM-L6-v2 int8 model (extra `vector`); "openai": an OpenAI-compatible
    `/v1/embeddings` endpoint; "ollama": Ollama's `/api/embed`."""
    url: str = ""
    """Base URL for "openai" and "ollama" (e.g. http://127.0.0.1:11434)."""
    model: str = ""
    """Model name for "openai" and "ollama"; ignored for "onnx"."""
    api_key_env: str = ""
    """Name of the environment variable holding the API key (never the key itself in a config file)."""
    timeout: float = 30.0

"""The `[ai]` settings section."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct


class AiSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    backend: Literal["ollama", "openai"] = "ollama"
    """"ollama": Ollama's /api/*; "openai": an OpenAI-compatible /v1/* endpoint (vLLM, llama.cpp, LM Studio...)."""
    url: str = ""
    """Base URL of the model server (http://127.0.0.1:11434 for Ollama, http://host:8000 or .../v1 for OpenAI).
    Empty: no model server; only ask_client (sampling through the MCP client) is offered."""
    model: str = ""
    """Default model of generate and chat (a call may name another)."""
    embed_model: str = ""
    """Default model of embed."""
    api_key_env: str = ""
    """The environment variable holding the API key (sent as a Bearer token; never the key in a file)."""
    connect_timeout: Annotated[float, Meta(gt=0)] = 10.0
    read_timeout: Annotated[float, Meta(gt=0)] = 120.0
    """Seconds without a byte from the server before a call fails (a streamed answer resets it with each chunk)."""
    admin: bool = False
    """Register pull and delete (model management)."""
    max_tokens: Annotated[int, Meta(ge=1, le=100_000)] = 4096
    """Ceiling of ask_client's max_tokens."""

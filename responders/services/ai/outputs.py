"""The ai service's tool arguments and results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct


class FunctionCall(Struct, kw_only=True):
    name: str
    arguments: dict[str, Any]


class ToolCall(Struct, kw_only=True, omit_defaults=True):
    function: FunctionCall
    id: str = ""
    type: str = "function"


class Message(Struct, kw_only=True, omit_defaults=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: Annotated[str, Meta(max_length=1_000_000)] = ""
    tool_calls: list[ToolCall] | None = None
    """Calls the assistant asked for (in an assistant message)."""
    tool_call_id: str | None = None
    """Which call a tool message answers (OpenAI-compatible servers need it)."""
    images: list[str] | None = None
    """Base64 images (Ollama multimodal models)."""


class Usage(Struct, kw_only=True, omit_defaults=True):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Generation(Struct, kw_only=True, omit_defaults=True):
    model: str
    text: str
    done_reason: str | None = None
    usage: Usage | None = None

    def __mcp_text__(self) -> str:
        return self.text


class ChatOutput(Struct, kw_only=True, omit_defaults=True):
    model: str
    message: Message
    done_reason: str | None = None
    usage: Usage | None = None

    def __mcp_text__(self) -> str:
        calls = self.message.tool_calls or []
        lines = [self.message.content] if self.message.content else []
        lines += [f"[tool call] {c.function.name}({c.function.arguments})" for c in calls]
        return "\n".join(lines)


class EmbedOutput(Struct, kw_only=True):
    model: str
    dimension: int
    embeddings: list[list[float]]

    def __mcp_text__(self) -> str:
        return f"{len(self.embeddings)} embedding(s) of dimension {self.dimension} from {self.model}"


class ModelInfo(Struct, kw_only=True, omit_defaults=True):
    name: str
    size: int | None = None
    modified_at: str | None = None
    family: str | None = None
    parameter_size: str | None = None
    owned_by: str | None = None


class ModelsOutput(Struct, kw_only=True):
    models: list[ModelInfo]


class ModelDetails(Struct, kw_only=True):
    model: str
    details: dict[str, Any]


class Status(Struct, kw_only=True):
    model: str
    status: str


class Answer(Struct, kw_only=True):
    """ask_client's result: the client's model and what it said."""

    model: str
    text: str
    stop_reason: str | None = None

    def __mcp_text__(self) -> str:
        return self.text

"""MCP payloads that the bridge and the responder runtime inspect.

Tolerant of unknown fields (MCP evolves); what is only forwarded stays `Raw`.
Field names follow the wire (camelCase) through `rename` so Python code reads naturally.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType, field

# Protocol versions, oldest to newest (DESIGN.md section 3).
HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: Final = ("2026-07-28",)
LATEST_HANDSHAKE: Final = HANDSHAKE_VERSIONS[-1]
LATEST_MODERN: Final = MODERN_VERSIONS[-1]
BATCH_VERSIONS: Final = frozenset({"2025-03-26"})

# Reserved _meta keys of the 2026-07-28 per-request envelope.
META_PROTOCOL_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO: Final = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL: Final = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION_ID: Final = "io.modelcontextprotocol/subscriptionId"

# MCP error codes beyond JSON-RPC's own (defined in errors.py).
from .errors import RESOURCE_NOT_FOUND_LEGACY as RESOURCE_NOT_FOUND_LEGACY  # noqa: E402
from .errors import UNSUPPORTED_PROTOCOL_VERSION as UNSUPPORTED_PROTOCOL_VERSION  # noqa: E402


class Implementation(Struct, kw_only=True, omit_defaults=True):
    name: str
    version: str
    title: str | UnsetType = UNSET


# 2026-07-28 cache hints: lists change live (clients are told), so a result is fresh only now. "public" for
# what every caller sees alike (the bridge's own answers), "private" for what a service returned for this caller.
CACHE_HINTS_PUBLIC: Final = {"resultType": "complete", "ttlMs": 0, "cacheScope": "public"}
CACHE_HINTS_PRIVATE: Final = {"resultType": "complete", "ttlMs": 0, "cacheScope": "private"}


class RequestMeta(Struct, kw_only=True, omit_defaults=True):
    """`params._meta` of a request: the progress token and the modern envelope."""

    progressToken: int | str | UnsetType = UNSET
    protocol_version: str | UnsetType = field(default=UNSET, name=META_PROTOCOL_VERSION)
    client_capabilities: Raw | UnsetType = field(default=UNSET, name=META_CLIENT_CAPABILITIES)
    client_info: Raw | UnsetType = field(default=UNSET, name=META_CLIENT_INFO)
    log_level: str | UnsetType = field(default=UNSET, name=META_LOG_LEVEL)
    traceparent: str | UnsetType = UNSET
    tracestate: str | UnsetType = UNSET
    baggage: str | UnsetType = UNSET


class InitializeParams(Struct, kw_only=True):
    protocolVersion: str
    capabilities: Raw = Raw(b"{}")
    clientInfo: Implementation | UnsetType = UNSET


class MetaOnlyParams(Struct, kw_only=True):
    """Params of a request the bridge answers itself; only `_meta` matters."""

    meta: RequestMeta | UnsetType = field(default=UNSET, name="_meta")


class PaginatedParams(Struct, kw_only=True):
    cursor: str | UnsetType = UNSET
    meta: RequestMeta | UnsetType = field(default=UNSET, name="_meta")


class CallToolParams(Struct, kw_only=True, omit_defaults=True):
    """`tools/call` params. `arguments` is forwarded untouched; only `name` is rewritten."""

    name: str
    arguments: Raw | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")
    inputResponses: Raw | UnsetType = UNSET
    requestState: str | UnsetType = UNSET


class CancelledParams(Struct, kw_only=True):
    requestId: int | str
    reason: str | UnsetType = UNSET


class ToolAnnotations(Struct, kw_only=True, omit_defaults=True):
    title: str | UnsetType = UNSET
    readOnlyHint: bool | UnsetType = UNSET
    destructiveHint: bool | UnsetType = UNSET
    idempotentHint: bool | UnsetType = UNSET
    openWorldHint: bool | UnsetType = UNSET


class Tool(Struct, kw_only=True, omit_defaults=True):
    """A tool definition. Schemas stay Raw: the bridge renames tools, never rewrites schemas."""

    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    inputSchema: Raw
    outputSchema: Raw | UnsetType = UNSET
    annotations: ToolAnnotations | UnsetType = UNSET
    icons: Raw | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")

    @property
    def retry_safe(self) -> bool:
        """True when a second execution cannot change the outcome (read-only or idempotent)."""
        a = self.annotations
        if a is UNSET:
            return False
        return a.readOnlyHint is True or a.idempotentHint is True


class ListToolsResult(Struct, kw_only=True, omit_defaults=True):
    tools: list[Tool]
    nextCursor: str | UnsetType = UNSET
    resultType: str | UnsetType = UNSET
    ttlMs: int | UnsetType = UNSET
    cacheScope: Literal["public", "private"] | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")


class TextContent(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="text"):
    text: str
    annotations: Raw | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")


class ImageContent(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="image"):
    data: str
    mimeType: str
    annotations: Raw | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")


class AudioContent(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="audio"):
    data: str
    mimeType: str
    annotations: Raw | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")


class ResourceLink(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="resource_link"):
    uri: str
    name: str
    mimeType: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    size: int | UnsetType = UNSET
    title: str | UnsetType = UNSET
    icons: Raw | UnsetType = UNSET
    annotations: Raw | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")


class EmbeddedResource(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="resource"):
    resource: dict[str, Any]
    annotations: Raw | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")


Content = TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource


class CallToolResult(Struct, kw_only=True, omit_defaults=True):
    content: list[Content]
    structuredContent: Any = UNSET
    isError: bool | UnsetType = UNSET
    resultType: str | UnsetType = UNSET
    meta: Raw | UnsetType = field(default=UNSET, name="_meta")

    def __post_init__(self) -> None:
        if self.resultType is UNSET:
            self.resultType = "complete"  # always on the wire: the bus speaks the 2026-07-28 shape


class InputRequiredResult(Struct, kw_only=True):
    """A 2026-07-28 multi round-trip answer: the caller gathers `inputRequests` and re-issues the call."""

    inputRequests: dict[str, Any]
    requestState: str
    resultType: str = "input_required"


def negotiate_version(requested: str) -> str:
    """The handshake version to answer: the client's when we know it, else our newest."""
    return requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE


_encoder: Final = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    return _encoder.encode(value)

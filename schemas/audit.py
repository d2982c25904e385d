"""The audit record: one per tool call, a JSON message on `<root>.audit.<svc>.<tool>` in the audit stream.

Readable as it is stored (`nats stream view MCP_AUDIT`). Fields are camelCase like MCP's;
optional ones are left out when they do not apply. New fields get defaults, never a new type.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

Outcome = Literal["ok", "tool_error", "protocol_error", "cancelled", "deadline"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("ok", "tool_error", "protocol_error", "cancelled", "deadline")


class AuditRecord(Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What happened to one tool call, written by the instance that handled it."""

    callId: str
    """The `Mcp-Call-Id` header (also the record's `Nats-Msg-Id`, so it is stored once)."""
    time: str
    """When the call finished, RFC 3339 UTC with milliseconds."""
    service: str
    tool: str
    instance: str
    """The responder instance (its ADR-32 id)."""
    identity: str
    """Who called: with auth on, the broker-verified identity from `Nats-Request-Info` (the caller's JWT
    name); without it, the caller's own claim (the `Mcp-Client` header), marked `verified: false`."""
    verified: bool | UnsetType = UNSET
    """True when `identity` was set by the NATS server; false when it is the caller's claim (absent in
    records written before issue #11)."""
    outcome: Outcome
    durationMs: float
    errorCode: int | UnsetType = UNSET
    """The JSON-RPC error code for protocol_error and deadline."""
    traceId: str | UnsetType = UNSET
    """The W3C trace id from the `traceparent` header, when the call carried one."""
    argsDigest: str | UnsetType = UNSET
    """"sha256:<hex>" over the exact bytes of `arguments` as received (absent when the params were unreadable)."""
    arguments: Raw | UnsetType = UNSET
    """Only with `[audit] arguments = "redacted"`: the arguments with secret-named values replaced."""
    argumentsOmitted: str | UnsetType = UNSET
    """Why `arguments` is missing although redacted arguments were asked for (e.g. too large)."""


record_encoder: Final = msgspec.json.Encoder()
record_decoder: Final = msgspec.json.Decoder(AuditRecord)

"""Every error code on the wire, in one place.

JSON-RPC 2.0's own codes, MCP's, and ours (-31xxx: the bus and the services). A code is a
contract: clients and dashboards match on it, so a code is never reused for another meaning.

    -327xx/-326xx  JSON-RPC: parse error, invalid request, method not found, invalid params, internal
    -320xx         MCP: resource not found (legacy), missing client capability, unsupported version
    -310xx         mcp-nats: the bus (no responder, deadline, lost responder, payload, permission,
                   not connected, overloaded, circuit open, JetStream) and the seam (rate limited)
"""

from __future__ import annotations

from typing import Final

# JSON-RPC 2.0
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

# MCP
RESOURCE_NOT_FOUND_LEGACY: Final = -32002
MISSING_CAPABILITY: Final = -32021
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

# mcp-nats: the bus
NO_RESPONDER: Final = -31001
DEADLINE: Final = -31002
RESPONDER_LOST: Final = -31003
PAYLOAD_TOO_LARGE: Final = -31004
PERMISSION: Final = -31005
NOT_CONNECTED: Final = -31006
OVERLOADED: Final = -31007
CIRCUIT_OPEN: Final = -31008
JETSTREAM: Final = -31009

# mcp-nats: refusals on the per-call seam (security: rate limits, concurrency caps, RBAC)
RATE_LIMITED: Final = -31010
"""Refused by a rate limit or concurrency cap; `data.retryAfterMs` says when to try again."""
FORBIDDEN: Final = -31011
"""Refused by policy for this identity (the broker normally refuses first; this is the seam's own check)."""

"""Bus metadata: header names, the service description, and the ADR-32 ($SRV) replies.

The wire (DESIGN.md section 2) carries MCP params in and MCP results out; everything about
the call itself travels in these headers.
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import UNSET, Struct, UnsetType

# Request headers (bridge -> responder).
CALL_ID: Final = "Mcp-Call-Id"
DEADLINE: Final = "Mcp-Deadline"  # absolute, integer ms since the Unix epoch
PROTOCOL_VERSION: Final = "Mcp-Protocol-Version"
HEARTBEAT: Final = "Mcp-Heartbeat"  # ms; asks the responder for liveness frames while it works
CLIENT: Final = "Mcp-Client"  # the caller's identity as configured (see DESIGN.md section 6)
CLIENT_CAPABILITIES: Final = (
    "Mcp-Client-Capabilities"  # JSON: what the client can do (sampling, elicitation, roots)
)
LOG_LEVEL: Final = "Mcp-Log-Level"  # the lowest level of notifications/message the caller wants; absent: none
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

# Reply headers (responder -> bridge).
FRAME: Final = "Mcp-Frame"  # "notification" or "heartbeat" on interim frames; absent on the final reply
FRAME_NOTIFICATION: Final = "notification"
FRAME_HEARTBEAT: Final = "heartbeat"
INSTANCE: Final = "Mcp-Instance"  # the ADR-32 id of the instance that answered
SERVICE_ERROR: Final = "Nats-Service-Error"
SERVICE_ERROR_CODE: Final = "Nats-Service-Error-Code"
STATUS: Final = "Status"  # set by nats-server: "503" means no responders

# ADR-32 metadata keys our responders publish, so bridges can find MCP services among others.
META_ROOT: Final = "mcp.root"
META_SERVICE: Final = "mcp.service"
META_PROTOCOL: Final = "mcp.protocol"
META_TOOL: Final = "mcp.tool"


class Capabilities(Struct, kw_only=True):
    tools: bool = True
    resources: bool = False
    prompts: bool = False
    subscribe: bool = False
    completions: bool = False


class ServiceDescription(Struct, kw_only=True, omit_defaults=True):
    """What `<root>.<svc>.discover` returns."""

    name: str
    version: str
    description: str
    instance: str
    capabilities: Capabilities
    title: str | UnsetType = UNSET
    instructions: str | UnsetType = UNSET


# --- ADR-32 service API (schemas: ../shared/reference/adr32-schemas/) ---------------------


class PingResponse(Struct, kw_only=True):
    type: str = "io.nats.micro.v1.ping_response"
    name: str
    id: str
    version: str
    metadata: dict[str, str]


class EndpointInfo(Struct, kw_only=True):
    name: str
    subject: str
    queue_group: str
    metadata: dict[str, str] | None = None


class InfoResponse(Struct, kw_only=True):
    type: str = "io.nats.micro.v1.info_response"
    name: str
    id: str
    version: str
    description: str
    metadata: dict[str, str]
    endpoints: list[EndpointInfo]


class EndpointStats(Struct, kw_only=True):
    name: str
    subject: str
    queue_group: str
    num_requests: int
    num_errors: int
    last_error: str
    processing_time: int  # ns
    average_processing_time: int  # ns


class StatsResponse(Struct, kw_only=True):
    type: str = "io.nats.micro.v1.stats_response"
    name: str
    id: str
    version: str
    metadata: dict[str, str]
    started: str  # RFC 3339
    endpoints: list[EndpointStats]


class CancelRequest(Struct, kw_only=True, frozen=True):
    """`<root>.<svc>.cancel`: stop the call with this id on whichever instance runs it (broadcast)."""

    callId: str


cancel_encoder: Final = msgspec.json.Encoder()
cancel_decoder: Final = msgspec.json.Decoder(CancelRequest)


class CircuitStatus(Struct, kw_only=True, frozen=True):
    state: str
    """"closed", "half-open" or "open"."""
    failures: int
    trips: int


class BridgeStatus(Struct, kw_only=True, frozen=True):
    """What a bridge answers on `<root>.bridges.status`."""

    bridge: str
    client: str
    circuits: dict[str, CircuitStatus]
    calls_in_flight: int


status_encoder: Final = msgspec.json.Encoder()
status_decoder: Final = msgspec.json.Decoder(BridgeStatus)

"""Settings: one frozen Struct per process, parsed from `mcp-nats.toml` and `MCP_NATS_*`.

Unknown keys are refused (a typo must not be silently ignored); every value is checked
against the constraints below, and the error names the offending key.
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import Meta, Struct, field

Positive = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
Token = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]+$", max_length=32)]

DEFAULT_URL: Final = "nats://127.0.0.1:4222"


class NatsSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    """Server URL(s), comma-separated. Empty: the URL recorded by `mcp-nats up`, else DEFAULT_URL."""
    root: Token = "mcp"
    """First subject token of every MCP subject; tests and tenants isolate themselves with it."""
    connect_timeout: Positive = 5.0
    reconnect_wait: Positive = 0.5
    max_reconnect_attempts: int = -1
    """-1: keep trying for ever (the bridge and responders must outlive a server restart)."""
    credentials: str = ""
    """Path of a NATS .creds file, if the server requires one."""


class BridgeSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    call_timeout: Positive = 120.0
    """Absolute deadline of one tools/call, in seconds."""
    heartbeat: Positive = 1.0
    """Seconds between liveness frames a responder sends while a call runs."""
    liveness_window: Positive = 5.0
    """Seconds of silence after which an instance is presumed dead and a retry-safe call retried."""
    discovery_interval: Positive = 1.0
    """Seconds between discovery sweeps ($SRV.PING) that notice vanished instances."""
    tool_separator: Annotated[str, Meta(pattern=r"^_{1,3}$")] = "_"
    """Between service and tool in exposed names. Only underscores, which service names never contain."""
    max_tool_name: Annotated[int, Meta(ge=16, le=128)] = 53
    """Longest exposed tool name: 64 minus Claude Code's `mcp__nats__` prefix."""
    client_name: str = ""
    """Identity recorded for calls; empty: the OS user name."""
    max_line_bytes: PositiveInt = 16 * 1024 * 1024
    """Longest stdin line accepted (Claude Code's own cap is 16 MiB)."""
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 2
    page_size: Annotated[int, Meta(ge=1, le=1000)] = 100
    """Items per page of tools/list, resources/list, resources/templates/list and prompts/list."""


class ResponderSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    max_concurrency: PositiveInt = 64
    """Handler tasks running at once per process."""
    max_pending: PositiveInt = 2048
    """Requests accepted but waiting for a handler slot; beyond this they are refused as overloaded."""
    drain_timeout: Positive = 30.0
    state_key: Annotated[str, Meta(pattern=r"^([0-9a-fA-F]{32,128})?$")] = ""
    """Hex HMAC key for multi round-trip requestState, shared by every instance of a service.
    Empty: `mcp-nats serve` uses (creating it once) `<state_dir>/request-state.key`."""


class FsSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    roots: list[str] = field(default_factory=list)
    """`DIR` (read-write) or `DIR:ro` (read-only). Empty: the current directory, read-write."""
    max_read_bytes: PositiveInt = 1024 * 1024


class Settings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    state_dir: str = ""
    """Where `up` keeps the server's data and the URL in use. Empty: $XDG_STATE_HOME/mcp-nats."""
    nats: NatsSettings = field(default_factory=NatsSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    responder: ResponderSettings = field(default_factory=ResponderSettings)
    fs: FsSettings = field(default_factory=FsSettings)

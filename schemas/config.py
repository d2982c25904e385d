"""Settings: one frozen Struct per process, parsed from `mcp-nats.toml` and `MCP_NATS_*`.

Unknown keys are refused (a typo must not be silently ignored); every value is checked
against the constraints below, and the error names the offending key.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta, Struct, field

Positive = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
Token = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_-]+\Z", max_length=32)
]  # \Z: "$" matches before a final newline
StreamName = Annotated[str, Meta(pattern=r"^([A-Za-z0-9_-]{1,64})?\Z")]
Replicas = Annotated[int, Meta(ge=0, le=5)]
"""Stream replicas; 0 follows the cluster (3 when the server is clustered, else 1), as DESIGN.md section 5 asks."""
NonNegative = Annotated[float, Meta(ge=0)]
Bytes = Annotated[int, Meta(ge=-1)]

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
    tls_ca: str = ""
    """PEM file of the CA that signed the server's certificate; set: the connection must be TLS."""
    tls_cert: str = ""
    """PEM client certificate, for a server that requires one (mTLS); with tls_key."""
    tls_key: str = ""


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
    breaker_threshold: Annotated[int, Meta(ge=1, le=1000)] = 5
    """Consecutive bus failures (no responder, silent instance, deadline, overload) that open a service's circuit."""
    breaker_cooldown: Positive = 5.0
    """Seconds a circuit stays open before one probe call is let through."""
    max_inflight: Annotated[int, Meta(ge=1, le=1_000_000)] = 4096
    """Requests from the client in flight at once; at the cap the bridge stops reading stdin until one finishes."""
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


# -- JetStream: audit log and events (issue #5) -------------------------------------------

DAY: Final = 24 * 3600
DEFAULT_REDACT: Final = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "credentials",
    "private_key",
)


class AuditSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    """One record per tool call in the audit stream. Off: no records at all (and no spool)."""
    stream: StreamName = ""
    """Stream name. Empty: MCP_AUDIT for the root `mcp`, MCP_AUDIT_<root> for any other root."""
    max_age: NonNegative = 90.0 * DAY
    """Seconds a record is kept (0: for ever)."""
    max_bytes: Bytes = -1
    """Bytes the stream may hold (-1: no limit, only max_age). JetStream reserves a set limit against the
    server's max_file_store when the stream is created, so a large value can be refused on a small server."""
    discard: Literal["old", "new"] = "old"
    """At a limit: "old" removes the oldest records; "new" refuses new ones (they wait in the spool)."""
    replicas: Replicas = 0
    """Stream replicas; 0 follows the cluster (3 when clustered, else 1); a set number must not exceed the cluster size."""
    duplicate_window: Positive = 120.0
    """Seconds in which a record with the same call id (`Nats-Msg-Id`) is stored only once."""
    arguments: Literal["digest", "redacted"] = "digest"
    """"digest": only the SHA-256 of the raw arguments. "redacted": also the arguments, with the values
    of the names in `redact` replaced (at any depth)."""
    redact: list[str] = field(default_factory=lambda: list(DEFAULT_REDACT))
    """Argument names (case-insensitive) whose values never appear in a record."""
    max_argument_bytes: PositiveInt = 4096
    """Redacted arguments larger than this (encoded) are left out of the record; the digest stays."""
    ack_timeout: Positive = 5.0
    """Seconds to wait for JetStream's acknowledgement before a record goes to the spool."""
    retry_interval: Positive = 1.0
    """Seconds between attempts to replay the spool while JetStream is unavailable."""
    spool_dir: str = ""
    """Where unacknowledged records wait. Empty: <state_dir>/audit-spool."""
    spool_max_bytes: PositiveInt = 256 * 1024**2
    """Per-instance spool bound; beyond it a record is dropped, counted and logged as an error."""


class EventsSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    stream: StreamName = ""
    """Stream name. Empty: MCP_EVENTS for the root `mcp`, MCP_EVENTS_<root> for any other root."""
    max_age: NonNegative = 7.0 * DAY
    """Seconds an event is kept (0: for ever)."""
    max_bytes: Bytes = -1
    """Bytes the stream may hold (-1: no limit, only max_age); the oldest events go first. A set limit is
    reserved against the server's max_file_store."""
    replicas: Replicas = 0


class MetricsSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    """Serve Prometheus `/metrics` from every long-running process (bridge, responders, up)."""
    host: str = "127.0.0.1"
    """Address the metrics endpoint binds to (loopback unless you mean otherwise)."""
    port: Annotated[int, Meta(ge=0, le=65535)] = 0
    """Port of the metrics endpoint; 0 picks a free one (every process writes its target into
    <state_dir>/prometheus/ for Prometheus' file-based discovery)."""


class ConsulSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Registration of every responder instance with a Consul agent (responders/consul.py)."""

    address: str = ""
    """The local agent's HTTP address, e.g. "http://127.0.0.1:8500". Empty: no registration."""
    token: str = ""
    """ACL token sent as X-Consul-Token (needs service:write on mcp-<service>)."""
    ttl: Positive = 15.0
    """Seconds of the TTL health check; the instance reports passing every ttl/3 while it serves."""
    deregister_after: Positive = 60.0
    """Consul removes an instance whose check stayed critical this long (a process killed without draining)."""
    timeout: Positive = 5.0
    """Seconds an agent request may take."""


class Settings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    state_dir: str = ""
    """Where `up` keeps the server's data and the URL in use. Empty: $XDG_STATE_HOME/mcp-nats."""
    nats: NatsSettings = field(default_factory=NatsSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    responder: ResponderSettings = field(default_factory=ResponderSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    services: dict[str, Struct] = field(default_factory=dict)
    """Each service plugin's own section (`[fs]`, `[memory]`, `[postgres]`, ...), parsed by the plugin's
    settings Struct when the configuration is loaded (cli/config.py); a section not given is absent."""
    log_format: Literal["text", "json"] = "text"
    """"text": readable lines for a terminal; "json": one JSON object per line on stderr (time, level,
    logger, message, and callId/traceId inside a call)."""

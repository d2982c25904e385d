"""Prometheus metrics of one process: a registry of its own, and the observers that fill it.

The names and labels below are a contract (infra/ dashboards and alert rules query them); add
metrics, never rename one. Each process owns one `CollectorRegistry` (not the library's global
one) holding the process collector and the metrics of its role:

- responder: `mcp_tool_calls_total{service,tool,outcome}`, `mcp_tool_call_duration_seconds{service,tool}`,
  `mcp_tool_calls_in_flight{service}`, `mcp_audit_spool_records{service}`,
  `mcp_audit_publish_failures_total{service}`;
- bridge: `mcp_bridge_requests_total{method,outcome}`, `mcp_bridge_request_duration_seconds{method}`,
  `mcp_bridge_retries_total{service}`, `mcp_bridge_circuit_state{service}`, `mcp_bridge_instances{service}`;
- both: `mcp_nats_reconnects_total`.

The call path is a dict lookup and a few lock-protected float updates: the labelled children are
resolved once per (service, tool) and (method), never per call. Observers never raise and never
block (prometheus_client takes a per-metric lock held for nanoseconds).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from schemas.audit import OUTCOMES
from schemas.observe import BridgeOutcome, BridgeRequest, CircuitState, Refusal, ToolCall

DURATION_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
"""Seconds, 50 µs to 120 s (the bridge's default call deadline): a sub-millisecond tool and a long
one both land in a bucket that tells them apart."""

BRIDGE_OUTCOMES: Final[tuple[BridgeOutcome, ...]] = ("ok", "error", "tool_error", "cancelled")
MAX_LABEL_VALUES: Final = 512
"""Distinct tools (or methods) one process labels; beyond, the rest count as OTHER. A client can
name any tool or method, and every label value is a time series held for the process's life."""
OTHER: Final = "_other"
_NS: Final = 1e-9


def new_registry() -> CollectorRegistry:
    """A registry for one process, with the process collector (CPU, memory, open files, start time)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


class ConnectionMetrics:
    """`mcp_nats_reconnects_total`: a ConnectionObserver, in both roles."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._reconnects = Counter(
            "mcp_nats_reconnects", "Reconnections of this process's NATS connection.", registry=registry
        )

    def reconnected(self) -> None:
        self._reconnects.inc()


class _ToolChildren:
    """The labelled children of one (service, tool), resolved once."""

    __slots__ = ("by_outcome", "duration")

    def __init__(self, calls: Counter, duration: Histogram, service: str, tool: str) -> None:
        self.by_outcome = {o: calls.labels(service, tool, o) for o in OUTCOMES}
        self.duration = duration.labels(service, tool)


class ResponderMetrics:
    """Per-call counts, latency and in-flight calls of one responder instance (a CallObserver), and its
    audit spool (an AuditObserver).

    `call_ended` counts every call whose `call_started` this observer saw, under `call.outcome`, so the
    counts equal the audit log's for the same calls (refused and cancelled ones included)."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self._key = f"metrics:{id(self)}"
        self._service = service
        self._calls = Counter(
            "mcp_tool_calls",
            "Tool calls handled, by outcome (ok, tool_error, protocol_error, cancelled, deadline).",
            ("service", "tool", "outcome"),
            registry=registry,
        )
        self._duration = Histogram(
            "mcp_tool_call_duration_seconds",
            "Time from a tools/call request's arrival to its end, in seconds.",
            ("service", "tool"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        # A plain int read at scrape time: two fewer locked updates per call.
        self._running = 0
        Gauge(
            "mcp_tool_calls_in_flight",
            "Tool calls started and not yet ended.",
            ("service",),
            registry=registry,
        ).labels(service).set_function(lambda: self._running)
        self._spool = Gauge(
            "mcp_audit_spool_records",
            "Audit records waiting in the on-disk spool for JetStream.",
            ("service",),
            registry=registry,
        ).labels(service)
        self._failures = Counter(
            "mcp_audit_publish_failures",
            "Audit record publishes that JetStream refused or did not acknowledge in time.",
            ("service",),
            registry=registry,
        ).labels(service)
        self._failures_seen = 0
        self._tools: dict[str, _ToolChildren] = {}

    def _children(self, tool: str) -> _ToolChildren:
        children = self._tools.get(tool)
        if children is None:
            if len(self._tools) >= MAX_LABEL_VALUES:
                tool = OTHER
                children = self._tools.get(tool)
            if children is None:
                children = self._tools[tool] = _ToolChildren(self._calls, self._duration, self._service, tool)
        return children

    def call_started(self, call: ToolCall) -> Refusal | None:
        call.scratch[self._key] = self._children(call.tool)
        self._running += 1
        return None

    def call_ended(self, call: ToolCall) -> None:
        children = call.scratch.pop(self._key, None)
        if not isinstance(children, _ToolChildren):  # call_started never reached this observer
            children = self._children(call.tool)
        else:
            self._running -= 1
        children.by_outcome[call.outcome].inc()
        children.duration.observe(call.duration_ns * _NS)

    def audit_changed(self, spool_records: int, publish_failures: int) -> None:
        self._spool.set(spool_records)
        if publish_failures > self._failures_seen:  # a running total; the counter only ever goes up
            self._failures.inc(publish_failures - self._failures_seen)
            self._failures_seen = publish_failures


class _MethodChildren:
    __slots__ = ("by_outcome", "duration")

    def __init__(self, requests: Counter, duration: Histogram, method: str) -> None:
        self.by_outcome = {o: requests.labels(method, o) for o in BRIDGE_OUTCOMES}
        self.duration = duration.labels(method)


class BridgeMetrics:
    """Requests, latency, retries, circuit states and instance counts of one bridge (a BridgeObserver)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "mcp_bridge_requests",
            "Client requests the bridge handled, by MCP method and outcome (ok, error, tool_error, cancelled).",
            ("method", "outcome"),
            registry=registry,
        )
        self._duration = Histogram(
            "mcp_bridge_request_duration_seconds",
            "Time from a client request's arrival in the bridge to its answer, in seconds.",
            ("method",),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._retries = Counter(
            "mcp_bridge_retries",
            "Bus attempts repeated after a lost or silent instance.",
            ("service",),
            registry=registry,
        )
        self._circuit = Gauge(
            "mcp_bridge_circuit_state",
            "Circuit breaker per service: 0 closed, 1 half-open, 2 open.",
            ("service",),
            registry=registry,
        )
        self._instances = Gauge(
            "mcp_bridge_instances",
            "Responder instances the bridge's discovery sees.",
            ("service",),
            registry=registry,
        )
        self._methods: dict[str, _MethodChildren] = {}

    def request_started(self, req: BridgeRequest) -> None:
        return None

    def request_ended(self, req: BridgeRequest) -> None:
        children = self._methods.get(req.method)
        if children is None:
            method = req.method if len(self._methods) < MAX_LABEL_VALUES else OTHER
            children = self._methods.get(method)
            if children is None:
                children = self._methods[method] = _MethodChildren(self._requests, self._duration, method)
        children.by_outcome[req.outcome].inc()
        children.duration.observe(req.duration_ns * _NS)

    def retried(self, service: str) -> None:
        self._retries.labels(service).inc()

    def circuit_changed(self, service: str, state: CircuitState) -> None:
        self._circuit.labels(service).set(state)

    def instances_changed(self, service: str, count: int) -> None:
        self._instances.labels(service).set(count)

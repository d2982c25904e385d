"""The per-call seam's data: what observers see of each call, on both sides of the bus.

Observers (audit, metrics, traces, logs, RBAC, rate limits) are handed these objects; they hold
no reference to the runner or the bridge. Pure data: no I/O, no imports beyond the standard
library and msgspec.

Responder side, one `ToolCall` per tools/call request::

    refusal = observer.call_started(call)   # before the handler; a Refusal stops the call
    ...                                     # the handler runs (call.outcome etc. filled in after)
    observer.call_ended(call)               # exactly once per started call, refused ones included

Bridge side, one `BridgeRequest` per client request it forwards::

    observer.request_started(req)           # may set req.traceparent/tracestate for the bus hop
    observer.request_ended(req)
    observer.retried(service); observer.circuit_changed(service, state); observer.instances_changed(...)

Rules every observer keeps: never block (no I/O on the call path; queue it), never raise (the
seam catches and logs what escapes, and the call goes on), and be cheap when disabled.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from msgspec import Raw, Struct

from .audit import Outcome

CircuitState = Literal[0, 1, 2]
CIRCUIT_CLOSED: Final = 0
CIRCUIT_HALF_OPEN: Final = 1
CIRCUIT_OPEN: Final = 2


class Refusal(Struct, kw_only=True, frozen=True):
    """An observer's reason to refuse a call before its handler runs (rate limit, policy)."""

    code: int
    """A code from schemas.errors (e.g. RATE_LIMITED)."""
    message: str
    """The sentence the caller sees; name the identity, the tool and the limit."""
    retry_after: float | None = None
    """Seconds after which the same call may succeed (rate limits); sent as data.retryAfterMs."""


class ToolCall:
    """One tools/call as the responder's seam sees it. Filled in by the runner; read by observers.

    `identity` is who called as far as this instance can tell (the broker-verified identity once
    security is on; today the `Mcp-Client` header) and `verified` says which. `headers` are the
    request's headers as received; observers read trace context and the like from them."""

    __slots__ = (
        "service",
        "tool",
        "call_id",
        "instance",
        "identity",
        "verified",
        "headers",
        "arguments",
        "started_ns",
        "outcome",
        "code",
        "error",
        "duration_ns",
        "busy",
        "scratch",
        "_digest",
    )

    def __init__(
        self,
        *,
        service: str,
        tool: str,
        call_id: str,
        instance: str,
        identity: str,
        verified: bool,
        headers: dict[str, str],
        arguments: bytes | Raw | None,
        started_ns: int,
    ) -> None:
        self.service = service
        self.tool = tool
        self.call_id = call_id
        self.instance = instance
        self.identity = identity
        self.verified = verified
        self.headers = headers
        self.arguments = arguments
        """The exact bytes of `arguments` as received (a buffer); None when the params were unreadable."""
        self.started_ns = started_ns
        """time.perf_counter_ns() when the request arrived."""
        self.outcome: Outcome = "ok"
        self.code: int | None = None
        """The JSON-RPC error code when outcome is protocol_error or deadline."""
        self.error: str | None = None
        """A short sentence for anything but ok."""
        self.duration_ns = 0
        self.busy = False
        """Other calls were still running on this instance when this one ended."""
        self.scratch: dict[str, object] = {}
        """Per-call state an observer keeps between started and ended (e.g. its span), keyed by observer."""
        self._digest: str | None = None

    @property
    def traceparent(self) -> str | None:
        return self.headers.get("traceparent")

    @property
    def tracestate(self) -> str | None:
        return self.headers.get("tracestate")

    @property
    def args_digest(self) -> str | None:
        """ "sha256:<hex>" over the exact argument bytes (computed once, on first use)."""
        if self.arguments is None:
            return None
        if self._digest is None:
            self._digest = "sha256:" + hashlib.sha256(self.arguments).hexdigest()
        return self._digest


class CallObserver(Protocol):
    """Sees every tools/call a responder instance handles, refused ones included. Must not block and should
    not raise. Observers run in order; the first Refusal wins (put refusing observers first)."""

    def call_started(self, call: ToolCall) -> Refusal | None: ...

    def call_ended(self, call: ToolCall) -> None: ...


BridgeOutcome = Literal["ok", "error", "tool_error", "cancelled"]


class BridgeRequest:
    """One client request the bridge handles, as its seam sees it.

    `service`/`tool` are set for requests routed to one service (tools/call, prompts/get,
    resources/read); `attempts` counts bus attempts (retries included)."""

    __slots__ = (
        "method",
        "request_id",
        "protocol_version",
        "service",
        "tool",
        "uri",
        "call_id",
        "client_traceparent",
        "client_tracestate",
        "client_baggage",
        "traceparent",
        "tracestate",
        "started_ns",
        "duration_ns",
        "attempts",
        "outcome",
        "code",
        "scratch",
    )

    def __init__(
        self,
        *,
        method: str,
        request_id: str | int | None,
        protocol_version: str,
        started_ns: int,
        client_traceparent: str | None = None,
        client_tracestate: str | None = None,
        client_baggage: str | None = None,
    ) -> None:
        self.method = method
        self.request_id = request_id
        self.protocol_version = protocol_version
        self.service: str | None = None
        self.tool: str | None = None
        self.uri: str | None = None
        self.call_id: str | None = None
        self.client_traceparent = client_traceparent
        """The client's W3C trace context from params._meta, when it sent one."""
        self.client_tracestate = client_tracestate
        self.client_baggage = client_baggage
        self.traceparent: str | None = client_traceparent
        """What goes on the bus request; a tracing observer replaces it with its own span's context."""
        self.tracestate: str | None = client_tracestate
        self.started_ns = started_ns
        self.duration_ns = 0
        self.attempts = 0
        self.outcome: BridgeOutcome = "ok"
        self.code: int | None = None
        self.scratch: dict[str, object] = {}


class BridgeObserver(Protocol):
    """Sees every request the bridge forwards, and the bridge's routing decisions."""

    def request_started(self, req: BridgeRequest) -> None: ...

    def request_ended(self, req: BridgeRequest) -> None: ...

    def retried(self, service: str) -> None: ...

    def circuit_changed(self, service: str, state: CircuitState) -> None: ...

    def instances_changed(self, service: str, count: int) -> None: ...


class ConnectionObserver(Protocol):
    """Sees the process's NATS connection (both sides)."""

    def reconnected(self) -> None: ...


class AuditObserver(Protocol):
    """Sees the audit log's state: records waiting in the spool, and the running total of failed publishes."""

    def audit_changed(self, spool_records: int, publish_failures: int) -> None: ...


class BackendTracer(Protocol):
    """Makes a span around one backend call (a query, an HTTP request) inside the current call's span."""

    def span(
        self, name: str, attributes: dict[str, str | int | float | bool]
    ) -> AbstractContextManager[None]: ...


class NoTracer:
    """The tracer when tracing is off: costs one method call."""

    def span(
        self, name: str, attributes: dict[str, str | int | float | bool]
    ) -> AbstractContextManager[None]:
        return nullcontext()


@dataclass(frozen=True, kw_only=True)
class Observers:
    """Everything a process plugs into its seams; the CLI builds it (telemetry, audit, security)."""

    calls: tuple[CallObserver, ...] = ()
    bridge: tuple[BridgeObserver, ...] = ()
    connection: tuple[ConnectionObserver, ...] = ()
    audit: tuple[AuditObserver, ...] = ()
    tracer: BackendTracer = field(default_factory=NoTracer)


class ObserverFailures:
    """How both seams report an observer that raised: the first failure of each (observer, hook) is logged
    with its traceback, later ones at debug, so a broken observer cannot flood the log on a hot path."""

    __slots__ = ("_log", "_seen", "_what")

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._seen: set[tuple[int, str]] = set()

    def failed(self, obs: object, hook: str) -> None:
        """Call from an `except Exception:` block around `obs.<hook>(...)`."""
        key = (id(obs), hook)
        if key in self._seen:
            self._log.debug("observer %s.%s failed again", type(obs).__name__, hook, exc_info=True)
            return
        self._seen.add(key)
        self._log.exception(
            "observer %s.%s failed; the %s goes on (further failures are logged at debug)",
            type(obs).__name__,
            hook,
            self._what,
        )

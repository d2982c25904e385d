"""OpenTelemetry traces: one span per bridged request, one per responder call, one per backend call.

On only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and
`OTEL_SDK_DISABLED` is not true; otherwise `start_tracing` returns None, nothing is imported and no
observer is installed. The SDK reads the standard variables itself: `OTEL_EXPORTER_OTLP_*`
(endpoint, headers, timeout, compression), `OTEL_BSP_*` (batching), `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_PROPAGATORS`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`. Export is OTLP over HTTP/protobuf.

Conventions: OpenTelemetry semantic conventions for MCP (open-telemetry/semantic-conventions-genai,
docs/gen-ai/mcp.md, status development, commit 0393513c). The bridge's span is the `mcp.client`
span of the hop to NATS (kind CLIENT); the responder's is the `mcp.server` span (kind SERVER),
named `{mcp.method.name} {target}` where target is the tool (or prompt) name. The client's context
from `params._meta` (traceparent, tracestate, baggage) is the bridge span's parent; the bridge's
span context travels as `traceparent`/`tracestate` headers on the NATS request and is the
responder span's parent; backend spans (`BackendTracer`) are children of the responder span.

Owns the TracerProvider and its batch exporter thread: `Tracing.close()` flushes (bounded) and
shuts them down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Final, cast

from schemas.observe import BridgeRequest, CircuitState, Refusal, ToolCall

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

AttributeValue = str | bool | int | float

ENDPOINT_VARS: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXTRA_HINT: Final = "pip install 'mcp-nats[otel]'"
_FLUSH_MS: Final = 3000
TOOLS_CALL: Final = "tools/call"
PROMPTS_GET: Final = "prompts/get"


def tracing_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """True when the environment asks for traces (an OTLP endpoint set, the SDK not disabled)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(v, "").strip() for v in ENDPOINT_VARS)


class Tracing:
    """A TracerProvider for one process and the observers built on it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("mcp-nats")

    def close(self) -> None:
        """Export what is buffered (at most ~3 s) and stop the exporter thread."""
        try:
            self.provider.force_flush(_FLUSH_MS)
            self.provider.shutdown()
        except Exception:
            log.warning("flushing traces failed", exc_info=True)


def new_provider(service_name: str, instance: str, *, exporter: object | None = None) -> TracerProvider:
    """A TracerProvider whose resource names the service and instance, exporting over OTLP/HTTP
    (or to `exporter`, e.g. an in-memory one in tests) through a BatchSpanProcessor."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

    attributes: dict[str, AttributeValue] = {"service.instance.id": instance, "service.namespace": "mcp-nats"}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the standard variable wins
        attributes["service.name"] = service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        assert isinstance(exporter, SpanExporter)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def start_tracing(service_name: str, instance: str) -> Tracing | None:
    """Tracing for this process when the environment asks for it, else None (nothing imported).

    When it asks but the OpenTelemetry packages are missing, logs an error naming the extra and
    returns None: the process runs untraced rather than not at all."""
    if not tracing_wanted():
        return None
    try:
        provider = new_provider(service_name, instance)
    except ImportError as exc:
        log.error(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): %s",
            exc.name,
            EXTRA_HINT,
        )
        return None
    return Tracing(provider)


def _traceparent(span: Span) -> tuple[str, str | None]:
    ctx = span.get_span_context()
    state = ctx.trace_state.to_header() if ctx.trace_state else None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}", state or None


def _target_attributes(method: str, target: str | None) -> dict[str, AttributeValue]:
    if target is None:
        return {}
    if method == TOOLS_CALL:
        return {"gen_ai.tool.name": target, "gen_ai.operation.name": "execute_tool"}
    if method == PROMPTS_GET:
        return {"gen_ai.prompt.name": target}
    return {}


def _span_name(method: str, target: str | None) -> str:
    return f"{method} {target}" if target and method in (TOOLS_CALL, PROMPTS_GET) else method


class BridgeTracing:
    """One CLIENT span per request the bridge forwards (a BridgeObserver). Sets `req.traceparent`/
    `req.tracestate` to the span's context, so the responder's span becomes its child."""

    def __init__(self, tracing: Tracing) -> None:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._key = f"trace:{id(self)}"
        self._tracer = tracing.tracer
        self._extract = propagate.extract
        self._kind = SpanKind.CLIENT
        self._error = StatusCode.ERROR
        self._status = Status

    def request_started(self, req: BridgeRequest) -> None:
        parent = None
        if req.client_traceparent:
            carrier = {"traceparent": req.client_traceparent}
            if req.client_tracestate:
                carrier["tracestate"] = req.client_tracestate
            if req.client_baggage:
                carrier["baggage"] = req.client_baggage
            parent = self._extract(carrier)
        attributes: dict[str, AttributeValue] = {
            "mcp.method.name": req.method,
            "network.protocol.name": "nats",
            **_target_attributes(req.method, req.tool),
        }
        if req.protocol_version:
            attributes["mcp.protocol.version"] = req.protocol_version
        if req.request_id is not None:
            attributes["jsonrpc.request.id"] = str(req.request_id)
        if req.uri:
            attributes["mcp.resource.uri"] = req.uri
        span = self._tracer.start_span(
            _span_name(req.method, req.tool), context=parent, kind=self._kind, attributes=attributes
        )
        req.scratch[self._key] = span
        req.traceparent, req.tracestate = _traceparent(span)

    def request_ended(self, req: BridgeRequest) -> None:
        held = req.scratch.pop(self._key, None)
        if held is None:
            return
        span = cast("Span", held)
        name = _span_name(req.method, req.tool)
        if req.tool and name != getattr(span, "name", name):  # the tool became known after the start
            span.update_name(name)
        attributes = _target_attributes(req.method, req.tool)
        if req.uri:
            attributes["mcp.resource.uri"] = req.uri
        if req.protocol_version:  # a 2026-07-28 request names its version in _meta, read after the start
            attributes["mcp.protocol.version"] = req.protocol_version
        if req.service:
            attributes["mcp_nats.service"] = req.service
        if req.attempts > 1:
            attributes["mcp_nats.bus.attempts"] = req.attempts
        error = _error_type(req.code, req.outcome)
        if error is not None:
            attributes["error.type"] = error
            if req.code is not None:
                attributes["rpc.response.status_code"] = str(req.code)
            span.set_status(self._status(self._error))
        span.set_attributes(attributes)
        span.end()

    def retried(self, service: str) -> None:
        return None

    def circuit_changed(self, service: str, state: CircuitState) -> None:
        return None

    def instances_changed(self, service: str, count: int) -> None:
        return None


def _error_type(code: int | None, outcome: str) -> str | None:
    """`error.type`: the JSON-RPC code, `tool_error` for an isError result, `cancelled`; None for success."""
    if code is not None:
        return str(code)
    if outcome == "ok":
        return None
    if outcome in ("tool_error", "cancelled"):
        return outcome
    return "_OTHER"


class CallTracing:
    """One SERVER span per tools/call a responder handles (a CallObserver): the child of the
    `traceparent`/`tracestate` headers of the request, made current while the handler runs (so the
    service's backend spans are its children), ended when the call ends."""

    def __init__(self, tracing: Tracing) -> None:
        from opentelemetry import context, propagate, trace

        self._key = f"trace:{id(self)}"
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._tracer = tracing.tracer
        self._extract = propagate.extract
        self._attach = context.attach
        self._detach = context.detach
        self._in_context = trace.set_span_in_context
        self._kind = SpanKind.SERVER
        self._status = Status
        self._error = StatusCode.ERROR

    def call_started(self, call: ToolCall) -> Refusal | None:
        parent = self._extract(call.headers) if "traceparent" in call.headers else None
        span = self._tracer.start_span(
            f"{TOOLS_CALL} {call.tool}",
            context=parent,
            kind=self._kind,
            attributes={
                "mcp.method.name": TOOLS_CALL,
                "gen_ai.tool.name": call.tool,
                "gen_ai.operation.name": "execute_tool",
                "network.protocol.name": "nats",
                "mcp_nats.call.id": call.call_id,
            },
        )
        token = self._attach(self._in_context(span, parent))
        call.scratch[self._key] = (span, token)
        return None

    def call_ended(self, call: ToolCall) -> None:
        held = call.scratch.pop(self._key, None)
        if not isinstance(held, tuple):
            return
        span, token = held
        error = _error_type(call.code, call.outcome)
        if error is not None:
            span.set_attribute("error.type", error)
            if call.code is not None:
                span.set_attribute("rpc.response.status_code", str(call.code))
            span.set_status(self._status(self._error, call.error))
        span.end()
        self._detach(token)


class OtelBackendTracer:
    """Backend spans (a schemas.observe.BackendTracer): CLIENT spans, children of the current call's span."""

    def __init__(self, tracing: Tracing) -> None:
        from opentelemetry.trace import SpanKind

        self._tracer = tracing.tracer
        self._kind = SpanKind.CLIENT

    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> AbstractContextManager[None]:
        return self._span(name, attributes)

    @contextmanager
    def _span(self, name: str, attributes: Mapping[str, AttributeValue] | None) -> Iterator[None]:
        with self._tracer.start_as_current_span(name, kind=self._kind, attributes=attributes):
            yield

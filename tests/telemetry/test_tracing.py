"""The tracing observers against the SDK's in-memory exporter: span names, kinds, parents and attributes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from schemas.errors import DEADLINE
from schemas.observe import BridgeRequest, ToolCall
from telemetry.tracing import (
    BridgeTracing,
    CallTracing,
    OtelBackendTracer,
    Tracing,
    new_provider,
    start_tracing,
    tracing_wanted,
)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TP = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture
def exported() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = Tracing(new_provider("mcp-demo", "inst-1", exporter=exporter))
    yield tracing, exporter
    tracing.close()


def _one(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    return spans[0]


def _request(method: str = "tools/call", tool: str | None = "echo", **kw: str) -> BridgeRequest:
    req = BridgeRequest(method=method, request_id=7, protocol_version="2025-06-18", started_ns=0, **kw)
    req.tool = tool
    req.service = "demo" if tool else None
    return req


def _call(headers: dict[str, str]) -> ToolCall:
    return ToolCall(
        service="demo",
        tool="echo",
        call_id="call-1",
        instance="inst-1",
        identity="me",
        verified=False,
        headers=headers,
        arguments=b"{}",
        started_ns=time.perf_counter_ns(),
    )


def test_bridge_span_is_a_client_child_of_the_client_context_and_goes_on_the_bus(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    """With a client traceparent, the bridge span is its CLIENT child, and req.traceparent names the bridge span."""
    tracing, exporter = exported
    obs = BridgeTracing(tracing)
    req = _request(client_traceparent=CLIENT_TP, client_tracestate="rojo=1", client_baggage="k=v")
    obs.request_started(req)
    assert req.traceparent is not None and req.traceparent != CLIENT_TP
    obs.request_ended(req)
    span = _one(exporter)
    assert span.name == "tools/call echo"
    assert span.kind is SpanKind.CLIENT
    assert span.context is not None and span.parent is not None
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE
    assert f"{span.parent.span_id:016x}" == CLIENT_SPAN
    assert req.traceparent == f"00-{CLIENT_TRACE}-{span.context.span_id:016x}-01"
    assert req.tracestate == "rojo=1"
    attrs = dict(span.attributes or {})
    assert attrs["mcp.method.name"] == "tools/call"
    assert attrs["gen_ai.tool.name"] == "echo"
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["mcp.protocol.version"] == "2025-06-18"
    assert attrs["jsonrpc.request.id"] == "7"
    assert attrs["network.protocol.name"] == "nats"
    assert "error.type" not in attrs
    assert span.status.status_code is StatusCode.UNSET
    assert span.resource.attributes["service.name"] == "mcp-demo"
    assert span.resource.attributes["service.instance.id"] == "inst-1"


def test_bridge_span_without_client_context_starts_a_trace_named_by_method(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    """Without a client traceparent the bridge span is a root; with no tool its name is the method; a resource URI is recorded."""
    tracing, exporter = exported
    obs = BridgeTracing(tracing)
    req = _request("resources/read", None)
    req.uri = "file:///tmp/x"
    obs.request_started(req)
    obs.request_ended(req)
    span = _one(exporter)
    assert span.parent is None
    assert span.name == "resources/read"
    assert dict(span.attributes or {})["mcp.resource.uri"] == "file:///tmp/x"
    assert "gen_ai.operation.name" not in dict(span.attributes or {})


@pytest.mark.parametrize(
    ("outcome", "code", "error_type"), [("error", -32602, "-32602"), ("tool_error", None, "tool_error")]
)
def test_bridge_span_error_type(
    exported: tuple[Tracing, InMemorySpanExporter], outcome: str, code: int | None, error_type: str
) -> None:
    """A JSON-RPC error sets error.type to its code; an isError result sets it to tool_error; both mark the span ERROR."""
    tracing, exporter = exported
    obs = BridgeTracing(tracing)
    req = _request()
    obs.request_started(req)
    req.outcome, req.code = outcome, code  # type: ignore[assignment]
    obs.request_ended(req)
    span = _one(exporter)
    assert dict(span.attributes or {})["error.type"] == error_type
    assert span.status.status_code is StatusCode.ERROR


def test_responder_span_is_a_server_child_of_the_bus_headers_and_current_for_the_handler(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    """The responder span's parent is the request's traceparent, it is current between start and end, and backend spans are its children."""
    tracing, exporter = exported
    obs = CallTracing(tracing)
    backend = OtelBackendTracer(tracing)
    call = _call({"traceparent": CLIENT_TP, "tracestate": "rojo=1"})
    assert obs.call_started(call) is None
    current = trace.get_current_span()
    assert f"{current.get_span_context().trace_id:032x}" == CLIENT_TRACE
    with backend.span("postgres query", {"db.system.name": "postgresql"}):
        pass
    call.outcome, call.code, call.error = "deadline", DEADLINE, "deadline exceeded"
    obs.call_ended(call)
    assert trace.get_current_span() is not current
    spans = {s.name: s for s in exporter.get_finished_spans()}
    server, db = spans["tools/call echo"], spans["postgres query"]
    assert server.kind is SpanKind.SERVER and db.kind is SpanKind.CLIENT
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CLIENT_SPAN
    assert server.context is not None and db.parent is not None
    assert db.parent.span_id == server.context.span_id
    attrs = dict(server.attributes or {})
    assert attrs["error.type"] == str(DEADLINE)
    assert attrs["gen_ai.tool.name"] == "echo" and attrs["mcp.method.name"] == "tools/call"
    assert attrs["network.protocol.name"] == "nats"
    assert server.status.status_code is StatusCode.ERROR
    assert dict(db.attributes or {})["db.system.name"] == "postgresql"


def test_a_failing_backend_block_marks_its_span_and_propagates(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    """An exception leaving a backend span marks it ERROR and is not swallowed."""
    tracing, exporter = exported
    with pytest.raises(ConnectionError), OtelBackendTracer(tracing).span("redis get", {}):
        raise ConnectionError("down")
    assert _one(exporter).status.status_code is StatusCode.ERROR


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTLP endpoint (or the SDK disabled) means no Tracing at all."""
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    assert start_tracing("mcp-demo", "i") is None
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})
    assert not tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"})

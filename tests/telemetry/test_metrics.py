"""The metric observers against an in-process registry: names, labels and counts are the contract."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from schemas.audit import OUTCOMES
from schemas.observe import CIRCUIT_OPEN, BridgeOutcome, BridgeRequest, ToolCall
from telemetry.metrics import (
    DURATION_BUCKETS,
    MAX_LABEL_VALUES,
    OTHER,
    BridgeMetrics,
    ConnectionMetrics,
    ResponderMetrics,
    new_registry,
)


def _call(tool: str = "echo", *, outcome: str = "ok", duration_ns: int = 1_000_000) -> ToolCall:
    call = ToolCall(
        service="demo",
        tool=tool,
        call_id="c1",
        instance="i1",
        identity="me",
        verified=False,
        headers={},
        arguments=b"{}",
        started_ns=time.perf_counter_ns(),
    )
    call.outcome = outcome  # type: ignore[assignment]
    call.duration_ns = duration_ns
    return call


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_metric_names_and_labels_are_the_contract() -> None:
    """A registry with every observer exposes exactly the documented families with the documented labels."""
    registry = new_registry()
    r, b, c = ResponderMetrics(registry, "demo"), BridgeMetrics(registry), ConnectionMetrics(registry)
    r.call_started(call := _call())
    r.call_ended(call)
    r.audit_changed(0, 1)
    req = BridgeRequest(method="tools/call", request_id=1, protocol_version="2025-06-18", started_ns=0)
    b.request_ended(req)
    b.retried("demo")
    b.circuit_changed("demo", CIRCUIT_OPEN)
    b.instances_changed("demo", 2)
    c.reconnected()
    labels: dict[str, set[str]] = {}
    for family in registry.collect():
        for s in family.samples:
            labels.setdefault(s.name, set(s.labels) - {"le"})
    assert labels["mcp_tool_calls_total"] == {"service", "tool", "outcome"}
    assert labels["mcp_tool_call_duration_seconds_bucket"] == {"service", "tool"}
    assert labels["mcp_tool_calls_in_flight"] == {"service"}
    assert labels["mcp_audit_spool_records"] == {"service"}
    assert labels["mcp_audit_publish_failures_total"] == {"service"}
    assert labels["mcp_bridge_requests_total"] == {"method", "outcome"}
    assert labels["mcp_bridge_request_duration_seconds_bucket"] == {"method"}
    assert labels["mcp_bridge_retries_total"] == {"service"}
    assert labels["mcp_bridge_circuit_state"] == {"service"}
    assert labels["mcp_bridge_instances"] == {"service"}
    assert labels["mcp_nats_reconnects_total"] == set()
    assert "process_cpu_seconds_total" in labels
    assert DURATION_BUCKETS[0] == 0.00005 and DURATION_BUCKETS[-1] == 120.0


def test_every_outcome_counts_once_per_call_and_in_flight_returns_to_zero() -> None:
    """Each ended call adds one to its (service, tool, outcome) counter and one histogram sample; in-flight goes up and back down."""
    registry = new_registry()
    m = ResponderMetrics(registry, "demo")
    calls = [_call(outcome=o) for o in OUTCOMES for _ in range(3)]
    for call in calls:
        m.call_started(call)
    assert _value(registry, "mcp_tool_calls_in_flight", service="demo") == len(calls)
    for call in calls:
        m.call_ended(call)
    assert _value(registry, "mcp_tool_calls_in_flight", service="demo") == 0
    for o in OUTCOMES:
        assert _value(registry, "mcp_tool_calls_total", service="demo", tool="echo", outcome=o) == 3
    assert _value(registry, "mcp_tool_call_duration_seconds_count", service="demo", tool="echo") == len(calls)
    assert _value(
        registry, "mcp_tool_call_duration_seconds_bucket", service="demo", tool="echo", le="0.001"
    ) == len(calls)
    assert (
        _value(registry, "mcp_tool_call_duration_seconds_bucket", service="demo", tool="echo", le="0.0005")
        == 0
    )


def test_a_call_ended_without_start_is_counted_and_leaves_in_flight_alone() -> None:
    """A call refused before this observer's call_started still counts, without driving in-flight negative."""
    registry = new_registry()
    m = ResponderMetrics(registry, "demo")
    m.call_ended(_call("nope", outcome="protocol_error"))
    assert (
        _value(registry, "mcp_tool_calls_total", service="demo", tool="nope", outcome="protocol_error") == 1
    )
    assert _value(registry, "mcp_tool_calls_in_flight", service="demo") == 0


def test_tool_label_values_are_capped() -> None:
    """Past MAX_LABEL_VALUES distinct tools, further names are counted under OTHER."""
    registry = new_registry()
    m = ResponderMetrics(registry, "demo")
    for i in range(MAX_LABEL_VALUES + 5):
        m.call_ended(_call(f"t{i}"))
    assert _value(registry, "mcp_tool_calls_total", service="demo", tool=OTHER, outcome="ok") == 5
    assert (
        _value(
            registry, "mcp_tool_calls_total", service="demo", tool=f"t{MAX_LABEL_VALUES + 1}", outcome="ok"
        )
        is None
    )


def test_audit_gauge_follows_the_spool_and_failures_only_grow() -> None:
    """audit_changed sets the spool gauge and adds the growth of the running failure total to the counter."""
    registry = new_registry()
    m = ResponderMetrics(registry, "demo")
    m.audit_changed(5, 2)
    m.audit_changed(3, 2)
    m.audit_changed(0, 7)
    assert _value(registry, "mcp_audit_spool_records", service="demo") == 0
    assert _value(registry, "mcp_audit_publish_failures_total", service="demo") == 7
    m.audit_changed(9, 7)
    assert _value(registry, "mcp_audit_spool_records", service="demo") == 9
    assert _value(registry, "mcp_audit_publish_failures_total", service="demo") == 7


def test_bridge_metrics_count_requests_retries_circuits_and_instances() -> None:
    """The bridge observer counts requests by method and outcome and mirrors retries, breaker state and instance counts."""
    registry = new_registry()
    b = BridgeMetrics(registry)
    outcomes: tuple[BridgeOutcome, ...] = ("ok", "ok", "error", "tool_error", "cancelled")
    for outcome in outcomes:
        req = BridgeRequest(method="tools/call", request_id=1, protocol_version="2025-06-18", started_ns=0)
        b.request_started(req)
        req.outcome = outcome
        req.duration_ns = 2_000_000
        b.request_ended(req)
    b.retried("fs")
    b.retried("fs")
    b.circuit_changed("fs", CIRCUIT_OPEN)
    b.instances_changed("fs", 3)
    b.instances_changed("fs", 2)
    assert _value(registry, "mcp_bridge_requests_total", method="tools/call", outcome="ok") == 2
    assert _value(registry, "mcp_bridge_requests_total", method="tools/call", outcome="error") == 1
    assert _value(registry, "mcp_bridge_request_duration_seconds_count", method="tools/call") == 5
    assert _value(registry, "mcp_bridge_retries_total", service="fs") == 2
    assert _value(registry, "mcp_bridge_circuit_state", service="fs") == 2
    assert _value(registry, "mcp_bridge_instances", service="fs") == 2


def test_registries_are_per_process_objects() -> None:
    """Two registries do not share series (nothing goes to prometheus_client's global registry)."""
    a, b = new_registry(), new_registry()
    ConnectionMetrics(a).reconnected()
    ConnectionMetrics(b)
    assert _value(a, "mcp_nats_reconnects_total") == 1
    assert _value(b, "mcp_nats_reconnects_total") == 0

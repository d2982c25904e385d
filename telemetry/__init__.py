"""Telemetry of a long-running process: Prometheus metrics, OpenTelemetry traces, JSON logs.

The entry points use one facade per role; each is an async context manager that owns the
process's `/metrics` endpoint, its file-based discovery target and (when configured) its tracer
provider, and hands back the observers to give the seam::

    async with Telemetry.responder(settings, service="fs", instance=iid, state_dir=sdir) as t:
        await serve(service, settings, instance=iid, observers=t.observers)

With `[metrics] enabled = false` there is no endpoint and no metrics observer; with
`OTEL_EXPORTER_OTLP_ENDPOINT` unset OpenTelemetry is not even imported; with `log_format = "text"`
no log-context observer is installed. What is off costs nothing on the call path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from schemas.config import Settings
from schemas.observe import (
    AuditObserver,
    BridgeObserver,
    CallObserver,
    ConnectionObserver,
    Observers,
)

from .endpoint import serve_metrics
from .errors import EndpointError as EndpointError
from .errors import TelemetryError as TelemetryError
from .filesd import sd_dir as sd_dir
from .filesd import sd_target, target_address
from .logs import LogContext
from .logs import setup_logging as setup_logging
from .metrics import BridgeMetrics, ConnectionMetrics, ResponderMetrics, new_registry
from .tracing import BridgeTracing, CallTracing, OtelBackendTracer, Tracing, start_tracing

log = logging.getLogger(__name__)


@dataclass
class _Parts:
    calls: list[CallObserver] = field(default_factory=list)
    bridge: list[BridgeObserver] = field(default_factory=list)
    connection: list[ConnectionObserver] = field(default_factory=list)
    audit: list[AuditObserver] = field(default_factory=list)


@dataclass(frozen=True)
class Telemetry:
    """What a process's telemetry gives its seam, and where its metrics can be found."""

    observers: Observers
    registry: CollectorRegistry | None
    """The process's metrics (None when `[metrics] enabled = false`)."""
    port: int | None
    """The bound /metrics port (None when disabled)."""
    target_file: Path | None
    """This process's file-SD target under <state_dir>/prometheus/ (None when disabled)."""
    tracing: Tracing | None

    @staticmethod
    def responder(
        settings: Settings, *, service: str, instance: str, state_dir: Path
    ) -> AbstractAsyncContextManager[Telemetry]:
        """One responder instance: call metrics, audit gauges, a SERVER span per call, call context in logs."""

        def build(registry: CollectorRegistry | None, tracing: Tracing | None, parts: _Parts) -> None:
            if tracing is not None:
                parts.calls.append(CallTracing(tracing))
            if settings.log_format == "json":
                parts.calls.append(LogContext())
            if registry is not None:
                metrics = ResponderMetrics(registry, service)
                parts.calls.append(metrics)
                parts.audit.append(metrics)

        return _process(
            settings,
            state_dir=state_dir,
            role="responder",
            name=f"responder-{service}-{instance}",
            labels={"service": service, "instance": instance},
            trace_name=f"mcp-{service}",
            instance=instance,
            build=build,
        )

    @staticmethod
    def bridge(
        settings: Settings, *, instance: str, state_dir: Path
    ) -> AbstractAsyncContextManager[Telemetry]:
        """One bridge: request metrics, a CLIENT span per request, request context in logs. A /metrics address
        that cannot be bound is logged and the bridge runs on without metrics."""

        def build(registry: CollectorRegistry | None, tracing: Tracing | None, parts: _Parts) -> None:
            if tracing is not None:
                parts.bridge.append(BridgeTracing(tracing))
            if settings.log_format == "json":
                parts.bridge.append(LogContext())
            if registry is not None:
                parts.bridge.append(BridgeMetrics(registry))

        return _process(
            settings,
            state_dir=state_dir,
            role="bridge",
            name=f"bridge-{instance}",
            labels={"service": "bridge", "instance": instance},
            trace_name="mcp-nats-bridge",
            instance=instance,
            build=build,
            required=False,
        )

    @staticmethod
    def up(settings: Settings, *, state_dir: Path) -> AbstractAsyncContextManager[Telemetry]:
        """`mcp-nats up` itself: the process collector only (it serves no calls)."""
        instance = f"up-{os.getpid()}"
        return _process(
            settings,
            state_dir=state_dir,
            role="up",
            name=instance,
            labels={"service": "up", "instance": instance},
            trace_name="",
            instance=instance,
            build=lambda _r, _t, _p: None,
            required=False,
        )


@asynccontextmanager
async def _process(
    settings: Settings,
    *,
    state_dir: Path,
    role: str,
    name: str,
    labels: Mapping[str, str],
    trace_name: str,
    instance: str,
    build: Callable[[CollectorRegistry | None, Tracing | None, _Parts], None],
    required: bool = True,
) -> AsyncIterator[Telemetry]:
    """`required`: an unusable /metrics address raises EndpointError; otherwise it is logged and the
    process runs without metrics (the bridge: a client's MCP session must not die of it)."""
    async with AsyncExitStack() as stack:
        tracing = start_tracing(trace_name, instance) if trace_name else None
        if tracing is not None:
            stack.callback(tracing.close)
        registry = new_registry() if settings.metrics.enabled else None
        port: int | None = None
        target: Path | None = None
        if registry is not None:
            try:
                port = await stack.enter_async_context(
                    serve_metrics(registry, settings.metrics.host, settings.metrics.port)
                )
            except EndpointError as exc:
                if required:
                    raise
                log.error("%s; running without metrics", exc)
                registry = None
            else:
                address = target_address(settings.metrics.host, port)
                target = stack.enter_context(sd_target(state_dir, name, address, {"role": role, **labels}))
        parts = _Parts()
        build(registry, tracing, parts)
        if registry is not None:
            parts.connection.append(ConnectionMetrics(registry))
        observers = Observers(
            calls=tuple(parts.calls),
            bridge=tuple(parts.bridge),
            connection=tuple(parts.connection),
            audit=tuple(parts.audit),
            tracer=OtelBackendTracer(tracing) if tracing is not None else Observers().tracer,
        )
        yield Telemetry(
            observers=observers, registry=registry, port=port, target_file=target, tracing=tracing
        )


__all__ = ["EndpointError", "Telemetry", "TelemetryError", "sd_dir", "setup_logging"]

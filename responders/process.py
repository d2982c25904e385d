"""One responder process: connect, enter the service's lifespan and the audit log, serve until
SIGTERM/SIGINT, drain, leave them in reverse order, exit.

    async with connect(...) as bus:               # the connection (drained on exit)
        async with AuditLog(...):                  # the first observer (flushed after the drain)
            async with service.open(runtime):      # the service's backends (closed after the drain)
                await ServiceRunner(...).run(stop)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from bus import Bus, BusError, JetStream, NotConnected, connect, events_stream
from schemas.config import Settings
from schemas.observe import CallObserver, Observers

from .audit import AuditLog, spool_root
from .consul import registered
from .plugin import ServiceRuntime
from .runtime import ServiceRunner, new_instance_id
from .service import Service

log = logging.getLogger(__name__)


async def serve(
    service: Service,
    settings: Settings,
    *,
    instance: str | None = None,
    observers: Observers | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[ServiceRunner], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or `stop`), then drain: in-flight calls finish before this returns.

    `observers` are the process's seams (telemetry, security); the audit log is added first when
    `[audit] enabled`. Raises NotConnected when the connection was closed for good meanwhile."""
    instance = instance or new_instance_id()
    observers = observers or Observers()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def reconnected() -> None:
        for obs in observers.connection:
            try:
                obs.reconnected()
            except Exception:
                log.debug("connection observer %s failed", type(obs).__name__, exc_info=True)

    try:
        async with (
            connect(
                settings.nats,
                name=f"mcp-nats {service.name} {instance}",
                ident=instance,
                on_reconnect=reconnected,
            ) as bus,
            contextlib.AsyncExitStack() as stack,
        ):
            await ensure_events_stream(bus, settings)
            calls: tuple[CallObserver, ...] = observers.calls
            if settings.audit.enabled:
                audit = AuditLog(
                    bus,
                    settings.audit,
                    service=service.name,
                    instance=instance,
                    spool_dir=spool_root(settings.state_dir, settings.audit.spool_dir),
                    drain_timeout=settings.responder.drain_timeout,
                    observers=observers.audit,
                )
                await stack.enter_async_context(audit)
                calls = (audit, *calls)
            runner = ServiceRunner(service, bus, settings.responder, instance=instance, observers=calls)
            runtime = ServiceRuntime(
                bus=bus,
                subjects=bus.subjects,
                events=runner.events,
                instance=instance,
                service=service.name,
                tracer=observers.tracer,
            )
            await stack.enter_async_context(service.open(runtime))
            await stack.enter_async_context(
                registered(settings.consul, service, instance=instance, root=bus.subjects.root)
            )
            lost: list[str] = []
            async with asyncio.TaskGroup() as tg:
                ready_event = asyncio.Event()
                helpers = [
                    tg.create_task(
                        _stop_when_closed(bus, stop, lost), name=f"{service.name} connection watch"
                    )
                ]
                if ready is not None:
                    helpers.append(
                        tg.create_task(_when_ready(ready_event, runner, ready), name=f"{service.name} ready")
                    )
                try:
                    await runner.run(stop, ready_event)
                finally:
                    for task in helpers:
                        task.cancel()
            if lost:
                raise NotConnected(settings.nats.url, f"the connection was closed for good ({lost[0]})")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _when_ready(
    event: asyncio.Event, runner: ServiceRunner, ready: Callable[[ServiceRunner], None]
) -> None:
    await event.wait()
    ready(runner)


async def _stop_when_closed(bus: Bus, stop: asyncio.Event, lost: list[str]) -> None:
    """nats-py closes the connection for good on most -ERR replies: stop (draining what can be
    drained; audit records go to the spool) so that the process exits and can be started again,
    instead of staying up without a connection."""
    await bus.closed.wait()
    if not stop.is_set():
        lost.append(bus.close_reason())
        log.error("the NATS connection was closed for good (%s); stopping", lost[0])
        stop.set()


async def ensure_events_stream(bus: Bus, settings: Settings) -> None:
    """Create (or update) the events stream; a failure is logged, not fatal (events still flow live)."""
    spec = events_stream(bus.subjects.root, settings.events)
    try:
        await JetStream(bus).ensure_stream(spec)
    except BusError as exc:
        log.warning("cannot ensure the events stream %s: %s", spec.name, exc)

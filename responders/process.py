"""One responder process: build the service, connect, serve until SIGTERM/SIGINT, drain, exit."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable
from typing import Any, Final

from bus import Bus, BusError, JetStream, NotConnected, connect, events_stream
from schemas.config import Settings

from .audit import AuditLog, spool_root
from .runtime import ServiceRunner, new_instance_id
from .service import Service

log = logging.getLogger(__name__)

# name -> "module:factory"; the factory takes the process Settings and returns a Service.
SERVICES: Final[dict[str, str]] = {
    "fs": "responders.fs.factory:from_settings",
    "demo": "responders.demo.factory:from_settings",
    "memory": "responders.memory.factory:from_settings",
}


def build_service(name: str, settings: Settings) -> Service:
    """The named service configured from settings. Raises KeyError for an unknown name, ValueError for bad config."""
    target = SERVICES[name]
    module, _, attr = target.partition(":")
    factory: Callable[[Settings], Service] = getattr(importlib.import_module(module), attr)
    return factory(settings)


async def serve(service: Service, settings: Settings, *, instance: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain: in-flight calls finish before the process exits."""
    instance = instance or new_instance_id()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with connect(settings.nats, name=f"mcp-nats {service.name} {instance}", ident=instance) as bus:
            await ensure_events_stream(bus, settings)
            audit = (
                AuditLog(
                    bus,
                    settings.audit,
                    service=service.name,
                    instance=instance,
                    spool_dir=spool_root(settings.state_dir, settings.audit.spool_dir),
                    drain_timeout=settings.responder.drain_timeout,
                )
                if settings.audit.enabled
                else None
            )
            lost: list[str] = []
            watch = asyncio.create_task(_stop_when_closed(bus, stop, lost))
            try:
                async with _attached(service, bus):
                    await ServiceRunner(service, bus, settings.responder, instance=instance, audit=audit).run(stop)
            finally:
                watch.cancel()
            if lost:
                raise NotConnected(settings.nats.url, f"the connection was closed for good ({lost[0]})")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


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


def _attached(service: Service, bus: Bus) -> contextlib.AbstractAsyncContextManager[Any]:
    """A service that needs the bus beyond its requests (e.g. memory's KV bucket) defines `attach(bus)`,
    an async context manager entered for the life of the instance."""
    attach = getattr(service, "attach", None)
    return attach(bus) if attach is not None else contextlib.nullcontext()

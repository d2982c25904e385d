"""One responder process: build the service, connect, serve until SIGTERM/SIGINT, drain, exit."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Callable
from typing import Final

from bus import connect
from schemas.config import Settings

from .runtime import ServiceRunner, new_instance_id
from .service import Service

log = logging.getLogger(__name__)

# name -> "module:factory"; the factory takes the process Settings and returns a Service.
SERVICES: Final[dict[str, str]] = {
    "fs": "responders.fs.factory:from_settings",
    "demo": "responders.demo.factory:from_settings",
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
            await ServiceRunner(service, bus, settings.responder, instance=instance).run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

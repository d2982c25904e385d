"""The telemetry each long-running command runs under (telemetry/): metrics endpoint, discovery file, traces.

`serve` and `bridge` enter `Telemetry.responder(...)` / `Telemetry.bridge(...)` around the process's
event loop work and hand the observers to the seam; `up`, a synchronous supervisor, runs
`Telemetry.up(...)` on a thread of its own (`up_metrics`), stopped and joined when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.config import Settings
from schemas.observe import Observers
from telemetry import Telemetry

from .config import state_dir

if TYPE_CHECKING:
    from responders import Service

log = logging.getLogger("mcp-nats")

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


async def serve_observed(
    service: Service, settings: Settings, name: str, extra: Observers | None = None
) -> None:
    """One responder instance under its telemetry (the instance id names its metrics target and spans).

    `extra` (security: rate limits) come after the telemetry observers, so a call they refuse still
    has its span and its count."""
    from responders import new_instance_id, serve

    instance = new_instance_id()
    async with Telemetry.responder(
        settings, service=name, instance=instance, state_dir=state_dir(settings)
    ) as t:
        await serve(
            service, settings, instance=instance, observers=combine(t.observers, extra or Observers())
        )


def combine(first: Observers, then: Observers) -> Observers:
    """Both bundles' observers, `first`'s before `then`'s; the backend tracer is `first`'s."""
    return Observers(
        calls=first.calls + then.calls,
        bridge=first.bridge + then.bridge,
        connection=first.connection + then.connection,
        audit=first.audit + then.audit,
        tracer=first.tracer,
    )


async def bridge_observed(settings: Settings, url: str | Callable[[], str]) -> None:
    """The bridge under its telemetry."""
    from bridge import run_bridge

    instance = secrets.token_hex(6)
    async with Telemetry.bridge(settings, instance=instance, state_dir=state_dir(settings)) as t:
        await run_bridge(settings, url, observers=t.observers)


@contextlib.contextmanager
def up_metrics(settings: Settings, sdir: Path) -> Iterator[None]:
    """`mcp-nats up`'s own /metrics and discovery file, served from a thread for the life of the block.

    A failure to start (e.g. the configured port is taken) is logged; `up` runs on without metrics."""
    ready = threading.Event()
    stopper: list[Callable[[], None]] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def stop() -> None:
            loop.call_soon_threadsafe(done.set)

        stopper.append(stop)
        async with Telemetry.up(settings, state_dir=sdir) as t:
            if t.port is not None:
                log.info("metrics on http://%s:%d/metrics", settings.metrics.host, t.port)
            ready.set()
            await done.wait()

    def main() -> None:
        try:
            asyncio.run(run())
        except Exception as exc:
            log.warning("up's /metrics endpoint is not available: %s", exc)
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="up metrics", daemon=True)
    thread.start()
    ready.wait(_START_TIMEOUT)
    try:
        yield
    finally:
        if stopper:
            with contextlib.suppress(RuntimeError):  # the loop already ended (it failed to start)
                stopper[0]()
        thread.join(_STOP_TIMEOUT)

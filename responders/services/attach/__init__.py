"""`attach`: an existing stdio MCP server (an npm package under node, a `uvx` tool, a binary) as a
service on the bus, served by a pool of its children.

    async with attached("everything", AttachSettings(command=["node", "dist/index.js"])) as service:
        await serve(service, settings)      # listed, called, scaled, audited like a native service

The pool is opened first (so a command that cannot start fails before anything is served), the
child's catalog is read, and the Service built from it. Its lifespan relays the children's
notifications while the instance serves: `resources/updated` and `list_changed` become our events
(each new child is subscribed to every listed resource when it offers subscriptions).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from msgspec import Struct

from bus import BusError

from ...events import Events
from ...plugin import ServiceRuntime
from ...service import Service
from .child import Child
from .errors import AttachError, ChildDied, ChildError, PoolClosed
from .pool import ChildPool, PoolLimits
from .service import Catalog, Forwarder, build_service, read_catalog

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS: Final = 1000
_KINDS: Final = {
    "notifications/tools/list_changed": "tools",
    "notifications/resources/list_changed": "resources",
    "notifications/prompts/list_changed": "prompts",
}


class AttachSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """How to run the attached server and its pool (the `[attach]` section, or `attach` flags)."""

    command: list[str] = []
    pool: int = 1
    """Children at most (started on demand; one is kept warm)."""
    max_per_child: int = 8
    """Requests in flight per child; more wait for a free child. 1 for servers that ask the client
    (sampling, elicitation, roots) while several calls run: stdio cannot say which call asked."""
    idle_ttl: float = 300.0
    max_lifetime: float = 3600.0
    init_timeout: float = 30.0
    backoff_max: float = 30.0
    """Longest wait before starting a child again while children keep failing (it doubles from 0.25 s)."""
    cwd: str | None = None
    env: dict[str, str] = {}
    """Added to the child's environment (ours, minus MCP_NATS_*)."""

    def limits(self) -> PoolLimits:
        return PoolLimits(
            size=self.pool,
            per_child=self.max_per_child,
            idle_ttl=self.idle_ttl,
            max_lifetime=self.max_lifetime,
            init_timeout=self.init_timeout,
            backoff_max=self.backoff_max,
        )


class _Relay:
    """The children's notifications as our events, while an instance serves (else dropped)."""

    def __init__(self) -> None:
        self.events: Events | None = None
        self._recent: dict[str, float] = {}

    async def __call__(self, method: str, params: dict[str, Any]) -> None:
        events = self.events
        if events is None:
            return
        try:
            if method == "notifications/resources/updated" and isinstance(params.get("uri"), str):
                uri = params["uri"]
                now = time.monotonic()
                if now - self._recent.get(uri, 0.0) < 0.2:  # every child is subscribed: one event per change
                    return
                self._recent[uri] = now
                await events.resource_updated(uri)
            elif method in _KINDS:
                kind = _KINDS[method]
                if kind == "tools":
                    log.warning(
                        "%s: the attached server changed its tools; an instance serves the tools it "
                        "found at start: restart it to serve the new ones",
                        events.service,
                    )
                await events.list_changed(kind)  # type: ignore[arg-type]
        except BusError as exc:
            log.debug("event for %s not published: %s", method, exc)


async def _subscribe_all(child: Child) -> None:
    resources = child.capabilities.get("resources")
    if not (isinstance(resources, dict) and resources.get("subscribe") is True):
        return
    cursor: str | None = None
    uris: list[str] = []
    while len(uris) < MAX_SUBSCRIPTIONS:
        page = await child.request("resources/list", {"cursor": cursor} if cursor else {})
        items = page.get("resources")
        uris.extend(
            r["uri"]
            for r in (items if isinstance(items, list) else [])
            if isinstance(r, dict) and isinstance(r.get("uri"), str)
        )
        nxt = page.get("nextCursor")
        if not isinstance(nxt, str) or not nxt:
            break
        cursor = nxt
    for uri in uris[:MAX_SUBSCRIPTIONS]:
        await child.request("resources/subscribe", {"uri": uri})


def child_env(extra: dict[str, str]) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_NATS_")}
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def attached(name: str, settings: AttachSettings) -> AsyncIterator[Service]:
    """Open the pool, read the catalog, yield the Service; on exit stop every child (whole groups).
    Raises PoolClosed when the command cannot be started or does not answer `initialize`."""
    relay = _Relay()
    async with ChildPool(
        settings.command,
        service=name,
        limits=settings.limits(),
        env=child_env(settings.env),
        cwd=settings.cwd,
        notify=relay,
        on_start=_subscribe_all,
    ) as pool:
        forwarder = Forwarder(pool, await read_catalog(pool))
        service = build_service(name, forwarder)

        @service.lifespan
        @contextlib.asynccontextmanager
        async def relaying(runtime: ServiceRuntime) -> AsyncIterator[None]:
            relay.events = runtime.events
            try:
                yield
            finally:
                relay.events = None

        yield service


__all__ = [
    "AttachError",
    "AttachSettings",
    "Catalog",
    "Child",
    "ChildDied",
    "ChildError",
    "ChildPool",
    "Forwarder",
    "PoolClosed",
    "PoolLimits",
    "attached",
    "build_service",
    "read_catalog",
]

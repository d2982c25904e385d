"""The bus side of the bridge: the connection (kept trying in the background, so the client's
handshake never waits for NATS), discovery, the caller, resources and prompts.

Owns one connection at a time and, within it, a task group: discovery's sweep loop and the
watch on the connection. Events from services (resource updated, list changed) and discovery's
findings go to the client through `Notices`; routing decisions go to the seam. If nats-py
closes the connection for good (an -ERR), a new one is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import secrets
from collections.abc import Callable
from typing import Any, Final

import msgspec
from msgspec import Raw

from bus import Bus, NotConnected, connect
from schemas.bus import BridgeStatus, status_encoder
from schemas.config import Settings
from schemas.events import ListChanged, ResourceUpdated, event_decoder
from schemas.mcp import CallToolParams
from schemas.observe import BridgeRequest

from .breaker import Breakers
from .calls import Caller
from .catalog import Catalog
from .discovery import Discovery
from .errors import BusUnavailable, InvalidParams, ServiceDown
from .notices import Notices
from .prompts import Prompts
from .resources import Resources
from .seam import BridgeSeam
from .shadow import Shadow

log = logging.getLogger(__name__)

_FIRST_CATALOG_WAIT: Final = 5.0


class Upstream:
    """Implements methods.Upstream over NATS."""

    def __init__(
        self, settings: Settings, url: str | Callable[[], str], notices: Notices, seam: BridgeSeam
    ) -> None:
        self._settings = settings
        self._url = url if callable(url) else (lambda: url)
        self.url = self._url()
        self._notices = notices
        self._seam = seam
        self.ident = "bridge-" + secrets.token_hex(6)
        b = settings.bridge
        # Breakers outlive connections: a service that kept failing stays open across a reconnect.
        self.breakers = Breakers(b.breaker_threshold, b.breaker_cooldown, on_change=seam.circuit_changed)
        self.bus: Bus | None = None
        self.discovery: Discovery | None = None
        self.caller: Caller | None = None
        self.resources: Resources | None = None
        self.prompts: Prompts | None = None
        self._ready = asyncio.Event()  # the first discovery sweep finished, or connecting failed once
        self._client = b.client_name or _user()

    async def run(self) -> None:
        """Connect (retrying with backoff) and serve until cancelled."""
        delay = 0.25
        while True:
            self.url = self._url()  # re-read each time: `mcp-nats up` may have (re)started since
            if not self.url:  # a server is being started for us and has not said where yet
                self._ready.set()
                await asyncio.sleep(0.2)
                continue
            try:
                async with connect(
                    self._settings.nats,
                    name=f"mcp-nats bridge {self.ident}",
                    ident=self.ident,
                    url=self.url,
                    on_reconnect=self._reconnected,
                ) as bus:
                    delay = 0.25
                    await self._serve(bus)
            except NotConnected as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
                self._ready.set()  # list nothing rather than make the client wait
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _serve(self, bus: Bus) -> None:
        """One connection's life: until discovery fails or nats-py closes the connection for good."""
        b = self._settings.bridge
        discovery = Discovery(bus, b, self._notices, self.breakers, self._seam, self._ready)
        subs = [
            await bus.subscribe(bus.subjects.all_events("resource_updated"), self._on_event),
            await bus.subscribe(bus.subjects.all_events("list_changed"), self._on_event),
            await bus.subscribe(bus.subjects.bridges_status(), self._on_status),
        ]
        self.bus, self.discovery = bus, discovery
        self.prompts = Prompts(bus, discovery, b)
        shadow = Shadow(bus)  # rollout shadows (bridge/shadow.py): read-only calls copied to a candidate
        self.caller = Caller(bus, b, self._client, discovery, self.breakers, self._seam, shadow)
        self.resources = Resources(bus, discovery, min(30.0, b.call_timeout))
        try:
            async with shadow, asyncio.TaskGroup() as tg:
                first = tg.create_task(self._mark_ready(discovery), name="first catalog")
                sweeps = tg.create_task(discovery.run(), name="discovery")
                lost = tg.create_task(bus.closed.wait(), name="connection watch")
                await asyncio.wait({sweeps, lost}, return_when=asyncio.FIRST_COMPLETED)
                if not sweeps.done():
                    log.warning(
                        "the NATS connection was closed for good (%s); connecting again", bus.close_reason()
                    )
                for t in (first, sweeps, lost):
                    t.cancel()  # a discovery error still comes out of the group
        finally:
            self.bus = self.caller = self.resources = self.prompts = None
            self.discovery = None
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _mark_ready(self, discovery: Discovery) -> None:
        await discovery.ready.wait()
        self._ready.set()

    async def _reconnected(self) -> None:
        self._seam.reconnected()
        if self.discovery is not None:
            self.discovery.reconnected()

    async def _on_status(self, msg: Any) -> None:
        """`<root>.bridges.status`: every bridge says who it is and how its circuits stand (for `mcp-nats status`)."""
        bus = self.bus
        if not msg.reply or bus is None:
            return
        status = BridgeStatus(
            bridge=self.ident,
            client=self._client,
            circuits=self.breakers.snapshot(),
            calls_in_flight=bus.inbox.outstanding,
        )
        with contextlib.suppress(Exception):
            await bus.publish(msg.reply, status_encoder.encode(status))

    async def _on_event(self, msg: Any) -> None:
        try:
            event = event_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        match event:
            case ResourceUpdated(uri=uri):
                self._notices.resource_updated(uri)
            case ListChanged(kind="tools" | "prompts" as kind):
                if self.discovery is not None:
                    self.discovery.poke()  # re-read the lists; the diff decides whether clients hear of it
                if kind == "prompts":
                    self._notices.list_changed(kind)
            case ListChanged(kind="resources"):
                self._notices.list_changed("resources")
            case _:
                pass

    # -- methods.Upstream ---------------------------------------------------------------------

    async def catalog(self) -> Catalog:
        if not self._ready.is_set():  # only the first requests of a session ever wait here
            try:
                await asyncio.wait_for(self._ready.wait(), _FIRST_CATALOG_WAIT)
            except TimeoutError:
                log.warning("no tool catalog within %.0f s; listing none", _FIRST_CATALOG_WAIT)
        d = self.discovery
        return d.catalog if d is not None else Catalog({})

    async def call_tool(
        self,
        name: str,
        params: CallToolParams,
        *,
        protocol_version: str,
        notify: Callable[[bytes], None],
        headers: dict[str, str],
        req: BridgeRequest,
    ) -> Raw:
        entry = (await self.catalog()).by_name.get(name)
        if entry is None and self.discovery is not None:
            entry = (await self.discovery.refresh()).by_name.get(name)
        caller = self.caller
        if caller is None:
            raise BusUnavailable(self.url)
        if entry is None:
            gone = self.discovery.vanished.get(name) if self.discovery is not None else None
            if gone is not None:
                raise ServiceDown(gone)  # it was there: say what is down and how to start it
            raise InvalidParams(f"Unknown tool: {name}")
        return await caller.call_tool(
            entry, params, protocol_version=protocol_version, notify=notify, extra_headers=headers, req=req
        )

    async def list_resources(self) -> list[Raw]:
        await self.catalog()
        return await self.resources.list_all() if self.resources is not None else []

    async def list_templates(self) -> list[Raw]:
        await self.catalog()
        return self.resources.templates() if self.resources is not None else []

    async def read_resource(self, uri: str, params: Raw, protocol_version: str, modern: bool) -> Raw:
        await self.catalog()
        if self.resources is None:
            raise BusUnavailable(self.url)
        return await self.resources.read(uri, params, protocol_version, modern)

    async def list_prompts(self) -> list[Raw]:
        await self.catalog()
        return self.prompts.list_all() if self.prompts is not None else []

    async def get_prompt(self, params: Raw, version: str) -> Raw:
        await self.catalog()
        if self.prompts is None:
            raise BusUnavailable(self.url)
        return await self.prompts.get(params, version)

    async def complete(self, params: Raw, version: str) -> Raw:
        await self.catalog()
        if self.prompts is None:
            raise BusUnavailable(self.url)
        return await self.prompts.complete(params, version)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

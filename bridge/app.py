"""The bridge process: stdio on one side, the bus on the other, until stdin closes.

Owns the stdio pipes, the session, the bus connection (retried in the background, so the
client's handshake never waits for NATS), discovery and the caller. On stdin EOF, SIGTERM
or SIGINT it cancels what is in flight, closes the connection and returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import secrets
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from msgspec import Raw

from bus import Bus, NotConnected, connect
from schemas.config import Settings
from schemas.jsonrpc import INTERNAL_ERROR, encode_error
from schemas.mcp import CallToolParams

from .calls import Caller
from .catalog import Catalog
from .discovery import Discovery
from .errors import BusUnavailable, InvalidParams, ServiceDown
from .prompts import Prompts
from .resources import Resources
from .session import Session
from .stdio import LineReader, LineWriter, claim_stdout

log = logging.getLogger(__name__)

_FIRST_CATALOG_WAIT = 5.0


class Upstream:
    """The bus side: connects (and keeps trying), runs discovery, forwards calls."""

    def __init__(self, settings: Settings, url: str | Callable[[], str], listener: Listener) -> None:
        self._settings = settings
        self._url = url if callable(url) else (lambda: url)
        self.url = self._url()
        self._listener = listener
        self.ident = "bridge-" + secrets.token_hex(6)
        self.bus: Bus | None = None
        self.discovery: Discovery | None = None
        self.caller: Caller | None = None
        self.resources: Resources | None = None
        self.prompts: Prompts | None = None
        self._ready = asyncio.Event()  # the first discovery sweep finished, or connecting failed once
        self._client = settings.bridge.client_name or _user()

    async def run(self) -> None:
        """Connect (retrying with backoff) and run discovery until cancelled."""
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
                    self.bus = bus
                    self.discovery = Discovery(
                        bus, self._settings.bridge, self._changed, self._listener.list_changed, self._new_instances
                    )
                    self.prompts = Prompts(bus, self.discovery, self._settings.bridge)
                    subs = [
                        await bus.subscribe(bus.subjects.all_events("resource_updated"), self._on_resource_updated),
                        await bus.subscribe(bus.subjects.all_events("list_changed"), self._on_list_changed),
                        await bus.subscribe(f"{bus.subjects.root}.bridges.status", self._on_status),
                    ]
                    self.caller = Caller(
                        bus, self._settings.bridge, self._client, self.discovery.has_instances, self.discovery.saw
                    )
                    self.resources = Resources(bus, self.discovery, min(30.0, self._settings.bridge.call_timeout))
                    watcher = asyncio.create_task(self._mark_ready(self.discovery))
                    sweeps = asyncio.create_task(self.discovery.run())
                    lost = asyncio.create_task(bus.closed.wait())
                    try:
                        await asyncio.wait({sweeps, lost}, return_when=asyncio.FIRST_COMPLETED)
                        if sweeps.done():
                            sweeps.result()  # discovery ended with an error: let it out, as before
                        else:
                            log.warning("the NATS connection was closed for good (%s); connecting again", bus.close_reason())
                    finally:
                        for t in (sweeps, lost):
                            t.cancel()
                        await asyncio.gather(sweeps, lost, return_exceptions=True)
                        watcher.cancel()
                        for sub in subs:
                            with contextlib.suppress(Exception):
                                await sub.unsubscribe()
            except NotConnected as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
                self._ready.set()  # list nothing rather than make the client wait
            finally:
                self.bus = None
                self.caller = None
                self.resources = None
                self.prompts = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _mark_ready(self, discovery: Discovery) -> None:
        await discovery.ready.wait()
        self._ready.set()

    async def _reconnected(self) -> None:
        if self.discovery is not None:
            self.discovery.reconnected()

    def _changed(self, catalog: Catalog) -> None:
        if self._ready.is_set():  # the first catalog is not a change the client has to hear about
            self._listener.list_changed("tools")

    def _new_instances(self, svc: str) -> None:
        if self.caller is not None:
            self.caller.breakers.get(svc).instances_appeared()

    async def _on_status(self, msg: Any) -> None:
        """`<root>.bridges.status`: every bridge says who it is and how its circuits stand (for `mcp-nats status`)."""
        if not msg.reply or self.bus is None:
            return
        body = {
            "bridge": self.ident,
            "client": self._client,
            "circuits": self.caller.breakers.snapshot() if self.caller is not None else {},
            "calls_in_flight": self.bus.inbox.outstanding,
        }
        with contextlib.suppress(Exception):
            await self.bus.publish(msg.reply, msgspec.json.encode(body))

    async def _on_resource_updated(self, msg: Any) -> None:
        try:
            uri = msgspec.json.decode(msg.data, type=dict[str, Any]).get("uri")
        except msgspec.DecodeError:
            return
        if isinstance(uri, str):
            self._listener.resource_updated(uri)

    async def _on_list_changed(self, msg: Any) -> None:
        try:
            kind = msgspec.json.decode(msg.data, type=dict[str, Any]).get("kind")
        except msgspec.DecodeError:
            return
        if kind == "tools" and self.discovery is not None:
            self.discovery.poke()  # re-read the lists; the catalog diff decides whether clients hear of it
        elif kind in ("resources", "prompts"):
            if kind == "prompts" and self.discovery is not None:
                self.discovery.poke()
            self._listener.list_changed(kind)

    async def catalog(self) -> Catalog:
        if not self._ready.is_set():  # only the first requests of a session ever wait here
            try:
                await asyncio.wait_for(self._ready.wait(), _FIRST_CATALOG_WAIT)
            except TimeoutError:
                log.warning("no tool catalog within %.0f s; listing none", _FIRST_CATALOG_WAIT)
        d = self.discovery
        return d.catalog if d is not None else Catalog({})

    async def refresh(self) -> Catalog:
        d = self.discovery
        return await d.refresh() if d is not None else Catalog({})

    async def call_tool(
        self,
        name: str,
        params: CallToolParams,
        *,
        protocol_version: str,
        notify: Callable[[bytes], None],
        headers: dict[str, str] | None = None,
    ) -> Raw:
        catalog = await self.catalog()
        entry = catalog.by_name.get(name)
        if entry is None and self.discovery is not None:
            entry = (await self.refresh()).by_name.get(name)
        caller = self.caller
        if caller is None:
            raise BusUnavailable(self.url)
        if entry is None:
            gone = self.discovery.vanished.get(name) if self.discovery is not None else None
            if gone is not None:
                raise ServiceDown(gone)  # it was there: say what is down and how to start it
            raise InvalidParams(f"Unknown tool: {name}")
        return await caller.call_tool(entry, params, protocol_version=protocol_version, notify=notify, extra_headers=headers)


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


class Listener(Protocol):
    """Where the bus side reports what the client must hear about."""

    def list_changed(self, kind: str) -> None: ...
    def resource_updated(self, uri: str) -> None: ...


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class _Deferred:
    """Forwards Listener calls to the session, which is created after the upstream."""

    def __init__(self, get: Callable[[], Listener]) -> None:
        self._get = get

    def list_changed(self, kind: str) -> None:
        self._get().list_changed(kind)

    def resource_updated(self, uri: str) -> None:
        self._get().resource_updated(uri)


async def run_bridge(settings: Settings, url: str | Callable[[], str]) -> None:
    """Serve one MCP client on stdin/stdout until stdin closes (or SIGTERM/SIGINT)."""
    t0 = time.monotonic()
    proto_fd = claim_stdout()
    writer = LineWriter(proto_fd)
    await writer.attach()
    reader = LineReader(settings.bridge.max_line_bytes)
    await reader.attach(0)
    session: Session
    upstream = Upstream(settings, url, _Deferred(lambda: session))
    session = Session(settings, writer.write, upstream)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    up_task = asyncio.create_task(upstream.run(), name="upstream")
    log.debug("bridge ready in %.1f ms", (time.monotonic() - t0) * 1000)

    async def pump() -> None:
        while (line := await reader.readline()) is not None:
            await session.room()  # at max_inflight, stop reading: the client's pipe fills and it waits
            try:
                session.feed(line)
            except Exception:  # a bug must cost one message, never the session
                log.exception("could not handle a message")
                writer.write(encode_error(None, INTERNAL_ERROR, "internal error in the bridge (details are in its log on stderr)"))

    pump_task = asyncio.create_task(pump(), name="stdin")
    stop_task = asyncio.create_task(stop.wait(), name="signals")
    try:
        await asyncio.wait({pump_task, stop_task, up_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (pump_task, stop_task):
            t.cancel()
        await session.close()
        up_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(up_task, 0.5)
        writer.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

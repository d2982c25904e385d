"""Live discovery: which MCP services have instances on the bus, and the merged tool catalog.

Owns the lifecycle-event subscription and the sweep loop. A sweep scatters `$SRV.PING`,
keeps the replies whose metadata names our subject root, and re-reads `tools.list` from
every service whose set of instances changed. Lifecycle events (`started`, `stopping`) and
unknown tool names trigger an immediate sweep; a periodic sweep notices instances that died
without a word. Whenever a merged list changes, the client hears of it through `Notices`
(the very first catalog of the process only when the client was already answered without
one); a service's new instances half-open its circuit breaker; instance counts go to the seam.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

import msgspec

from bus import Bus, BusError
from schemas import bus as h
from schemas.bus import PingResponse, ServiceDescription
from schemas.config import BridgeSettings
from schemas.events import Lifecycle, event_decoder
from schemas.mcp import ListToolsResult, Tool

from .breaker import Breakers
from .catalog import Catalog
from .notices import Notices
from .seam import BridgeSeam

log = logging.getLogger(__name__)

_ping_decoder: Final = msgspec.json.Decoder(PingResponse)
_tools_decoder: Final = msgspec.json.Decoder(ListToolsResult)
_description_decoder: Final = msgspec.json.Decoder(ServiceDescription)


class _Templates(msgspec.Struct):
    resourceTemplates: list[msgspec.Raw] = msgspec.field(default_factory=list)


_templates_decoder: Final = msgspec.json.Decoder(_Templates)
_MAX_PAGES: Final = 100


class Discovery:
    def __init__(
        self,
        bus: Bus,
        settings: BridgeSettings,
        notices: Notices,
        breakers: Breakers,
        seam: BridgeSeam,
        answered: asyncio.Event,
    ) -> None:
        """`answered`: the client was already answered without a catalog (no server yet), so the first
        catalog found is a change it must hear about."""
        self._bus = bus
        self._settings = settings
        self._notices = notices
        self._breakers = breakers
        self._seam = seam
        self._answered = answered
        self.prompts: dict[str, list[msgspec.Raw]] = {}
        self.catalog = Catalog({}, settings.tool_separator, settings.max_tool_name)
        self.instances: dict[str, set[str]] = {}
        self._tools: dict[str, list[Tool]] = {}
        self.descriptions: dict[str, ServiceDescription] = {}
        self.vanished: dict[str, str] = {}
        """Exposed tool name -> service, for tools whose service has no instance any more."""
        self.templates: dict[str, list[msgspec.Raw]] = {}
        self._leaving: dict[str, float] = {}
        self._grace_until = 0.0
        self._seen: dict[str, tuple[str, float]] = {}
        """Instance id -> (service, monotonic time of its last sign of life: a PING reply or a call's final reply)."""
        self._warned = 0.0
        self._relist = (
            False  # after a reconnect: re-read every service's lists (events were missed meanwhile)
        )
        self._poke = asyncio.Event()
        self._swept = asyncio.Condition()
        self._sweeps = 0
        self.ready = asyncio.Event()

    def poke(self) -> None:
        """Ask for a sweep now (a lifecycle event, an unknown tool, a reconnect)."""
        self._poke.set()

    async def refresh(self, timeout: float = 2.0) -> Catalog:
        """Sweep now and return the catalog after it (bounded by `timeout`)."""
        async with self._swept:
            target = self._sweeps + 1
            self.poke()
            try:
                await asyncio.wait_for(self._swept.wait_for(lambda: self._sweeps >= target), timeout)
            except TimeoutError:
                if time.monotonic() - self._warned > 10:  # one warning, not one per waiting call
                    self._warned = time.monotonic()
                    log.warning("discovery sweep did not finish within %.1f s", timeout)
        return self.catalog

    def saw(self, svc: str, instance: str | None) -> None:
        """A sign of life outside the sweep: a call's final reply names the instance that sent it."""
        if instance:
            self._seen[instance] = (svc, time.monotonic())

    def reconnected(self, grace: float = 3.0) -> None:
        """After a reconnect, responders may not be back yet: for `grace` seconds, sweeps add but never remove.
        The next sweep also re-reads every service's lists, even where the instances did not change: list
        changes announced while we were away were missed, and the diff against what we knew finds them."""
        self._grace_until = time.monotonic() + grace
        self._relist = True
        self.poke()

    def has_instances(self, svc: str) -> bool:
        return bool(self.instances.get(svc))

    async def run(self) -> None:
        sub = await self._bus.subscribe(self._bus.subjects.all_events("lifecycle"), self._on_lifecycle)
        try:
            while True:
                try:
                    await self._sweep()
                except BusError as exc:
                    log.warning("discovery sweep failed: %s", exc)
                self._sweeps += 1
                self.ready.set()
                async with self._swept:
                    self._swept.notify_all()
                try:
                    await asyncio.wait_for(self._poke.wait(), self._settings.discovery_interval)
                except TimeoutError:
                    pass
                self._poke.clear()
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection is closing
                log.debug("lifecycle unsubscribe failed", exc_info=True)

    async def _on_lifecycle(self, msg: object) -> None:
        try:
            event = event_decoder.decode(msg.data)  # type: ignore[attr-defined]
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if isinstance(event, Lifecycle) and event.event == "stopping" and event.instance:
            self._leaving[event.instance] = time.monotonic() + 60
        self.poke()

    async def _sweep(self) -> None:
        if not self._bus.connected:
            return  # an outage is not the services' absence: keep what we know until we can look again
        root = self._bus.subjects.root
        now = time.monotonic()
        self._leaving = {k: v for k, v in self._leaving.items() if v > now}
        found: dict[str, set[str]] = {}
        for reply in await self._bus.scatter(self._bus.subjects.srv_ping(), idle=0.1, limit=1.0):
            try:
                ping = _ping_decoder.decode(reply.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if ping.metadata.get(h.META_ROOT) != root or ping.id in self._leaving:
                continue
            svc = ping.metadata.get(h.META_SERVICE, "")
            # issue #11: a service this identity may not use at all is not listed (its tools, resources, prompts)
            if svc and "_" not in svc and self._bus.may_publish(self._bus.subjects.discover(svc)):
                found.setdefault(svc, set()).add(ping.id)
        for svc, ids in found.items():
            for i in ids:
                self._seen[i] = (svc, now)
        # A busy instance answers $SRV.PING late and misses the scatter window; keep it until it has been
        # silent as long as a call in flight would tolerate (liveness_window). "stopping" still removes it at once.
        window = self._settings.liveness_window
        for i, (svc, seen) in list(self._seen.items()):
            if i in self._leaving or now - seen > window:
                del self._seen[i]
            else:
                found.setdefault(svc, set()).add(i)
        if now < self._grace_until:
            for svc, ids in self.instances.items():
                found.setdefault(svc, set()).update(i for i in ids if i not in self._leaving)
        changed = False
        changed_kinds: set[str] = set()
        relist = self._relist
        if relist and any(d.capabilities.resources for d in self.descriptions.values()):
            changed_kinds.add(
                "resources"
            )  # resources/list is read on demand, so missed changes cannot be diffed
        for svc, ids in found.items():
            if ids - self.instances.get(svc, set()):
                self._breakers.instances_appeared(svc)
            if ids != self.instances.get(svc) or svc not in self._tools or relist:
                desc = await self._describe(svc)
                if desc is None:
                    continue
                is_new = svc not in self.descriptions
                self.descriptions[svc] = desc
                tools = await self._fetch_tools(svc) if desc.capabilities.tools else []
                if tools is not None:
                    changed |= tools != self._tools.get(svc)
                    self._tools[svc] = tools
                if desc.capabilities.resources:
                    templates = await self._fetch_templates(svc)
                    if is_new or templates != self.templates.get(svc):
                        changed_kinds.add("resources")
                    self.templates[svc] = templates
                if desc.capabilities.prompts:
                    prompts = await self._fetch_list(svc, "prompts.list", "prompts")
                    if prompts != self.prompts.get(svc):
                        self.prompts[svc] = prompts
                        changed_kinds.add("prompts")
        for svc in list(self._tools):
            if svc not in found:
                del self._tools[svc]
                gone = self.descriptions.pop(svc, None)
                if self.templates.pop(svc, None) is not None or (gone and gone.capabilities.resources):
                    changed_kinds.add("resources")
                if self.prompts.pop(svc, None) is not None:
                    changed_kinds.add("prompts")
                changed = True
        for svc in found.keys() | self.instances.keys():
            if len(found.get(svc, ())) != len(self.instances.get(svc, ())):
                self._seam.instances_changed(svc, len(found.get(svc, ())))
        self.instances = found
        self._relist = False
        if changed:
            old = self.catalog
            self.catalog = Catalog(
                {s: t for s, t in self._tools.items()},
                self._settings.tool_separator,
                self._settings.max_tool_name,
            )
            for e in old.entries:
                if e.exposed not in self.catalog.by_name:
                    self.vanished[e.exposed] = e.service
            for name in self.catalog.by_name:
                self.vanished.pop(name, None)
            log.info(
                "tool catalog now has %d tools from %s",
                len(self.catalog),
                sorted(self._tools) or "no services",
            )
            if self.ready.is_set() or self._answered.is_set():
                self._notices.list_changed("tools")
        if self.ready.is_set():
            for kind in sorted(changed_kinds):
                self._notices.list_changed(kind)

    def resource_services(self) -> list[str]:
        return sorted(
            s for s, d in self.descriptions.items() if d.capabilities.resources and self.instances.get(s)
        )

    async def _describe(self, svc: str) -> ServiceDescription | None:
        try:
            reply = await self._bus.request(self._bus.subjects.discover(svc), b"{}", timeout=2.0)
            return _description_decoder.decode(reply.data)
        except (BusError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("could not describe %s: %s", svc, exc)
            return None

    def prompt_services(self) -> list[str]:
        return sorted(
            s for s, d in self.descriptions.items() if d.capabilities.prompts and self.instances.get(s)
        )

    async def _fetch_list(self, svc: str, op: str, key: str) -> list[msgspec.Raw]:
        try:
            reply = await self._bus.request(self._bus.subjects.op(svc, op), b"{}", timeout=2.0)
            items = msgspec.json.decode(reply.data, type=dict[str, msgspec.Raw]).get(key)
            return msgspec.json.decode(items, type=list[msgspec.Raw]) if items is not None else []
        except (BusError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("could not list the %s of %s: %s", key, svc, exc)
            return []

    async def _fetch_templates(self, svc: str) -> list[msgspec.Raw]:
        try:
            reply = await self._bus.request(self._bus.subjects.templates_list(svc), b"{}", timeout=2.0)
            return _templates_decoder.decode(reply.data).resourceTemplates
        except (BusError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("could not list the resource templates of %s: %s", svc, exc)
            return []

    async def _fetch_tools(self, svc: str) -> list[Tool] | None:
        tools: list[Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            body = b"{}" if cursor is None else msgspec.json.encode({"cursor": cursor})
            try:
                reply = await self._bus.request(self._bus.subjects.tools_list(svc), body, timeout=2.0)
                page = _tools_decoder.decode(reply.data)
            except (BusError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("could not list the tools of %s: %s", svc, exc)
                return None
            # issue #11: only the tools this identity's credentials let it call (the broker enforces the rest)
            tools.extend(
                t for t in page.tools if self._bus.may_publish(self._bus.subjects.tool_call(svc, t.name))
            )
            if not isinstance(page.nextCursor, str) or not page.nextCursor:
                return tools
            cursor = page.nextCursor
        log.warning("%s returned more than %d pages of tools; using the first ones", svc, _MAX_PAGES)
        return tools

"""Resources across services: merged lists, and `resources/read` routed to the service that owns the URI.

`resources/list` is asked of every service that has resources, live (lists such as the
fs service's files change all the time); templates come from discovery. A read goes first
to the services whose templates match the URI, then to the others; the first answer that is
not "not found" wins.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Final

import msgspec
from msgspec import Raw

from bus import Bus, BusError, NoResponders
from schemas import bus as h
from schemas.jsonrpc import INVALID_PARAMS
from schemas.mcp import RESOURCE_NOT_FOUND_LEGACY
from schemas.uritemplate import compile_template, match

from .discovery import Discovery
from .errors import RemoteError, reply_error

log = logging.getLogger(__name__)


class _List(msgspec.Struct):
    resources: list[Raw] = msgspec.field(default_factory=list)


class _Template(msgspec.Struct):
    uriTemplate: str


_list_decoder: Final = msgspec.json.Decoder(_List)
_template_decoder: Final = msgspec.json.Decoder(_Template)
_NOT_FOUND: Final = (RESOURCE_NOT_FOUND_LEGACY, INVALID_PARAMS)


class Resources:
    def __init__(self, bus: Bus, discovery: Discovery, timeout: float) -> None:
        self._bus = bus
        self._discovery = discovery
        self._timeout = timeout
        self._patterns: dict[bytes, re.Pattern[str] | None] = {}

    async def list_all(self) -> list[Raw]:
        services = self._discovery.resource_services()

        async def one(svc: str) -> list[Raw]:
            try:
                reply = await self._bus.request(
                    self._bus.subjects.resources_list(svc), b"{}", timeout=self._timeout
                )
                return _list_decoder.decode(reply.data).resources
            except (BusError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("could not list the resources of %s: %s", svc, exc)
                return []

        pages = await asyncio.gather(*(one(s) for s in services))
        return [r for page in pages for r in page]

    def templates(self) -> list[Raw]:
        return [
            t for svc in self._discovery.resource_services() for t in self._discovery.templates.get(svc, [])
        ]

    def _owners(self, uri: str) -> list[str]:
        services = self._discovery.resource_services()
        matching = [
            s for s in services if any(self._matches(t, uri) for t in self._discovery.templates.get(s, []))
        ]
        return matching + [s for s in services if s not in matching]

    def _matches(self, template: Raw, uri: str) -> bool:
        key = bytes(template)
        if key not in self._patterns:
            try:
                self._patterns[key] = compile_template(_template_decoder.decode(key).uriTemplate)
            except (msgspec.DecodeError, msgspec.ValidationError, re.error):
                self._patterns[key] = None
        pattern = self._patterns[key]
        return pattern is not None and match(pattern, uri) is not None

    async def read(self, uri: str, params: Raw, protocol_version: str, modern: bool) -> Raw:
        headers = {
            h.PROTOCOL_VERSION: protocol_version,
            h.DEADLINE: str(int((time.time() + self._timeout) * 1000)),
        }
        for svc in self._owners(uri):
            subject = self._bus.subjects.resources_read(svc)
            try:
                reply = await self._bus.request(subject, bytes(params), headers, timeout=self._timeout)
            except NoResponders:
                continue
            except BusError as exc:
                raise RemoteError(exc.code, str(exc)) from None
            err = reply_error(reply.headers, reply.data)
            if err is None:
                return Raw(reply.data)
            if err.code in _NOT_FOUND and str(err).startswith("Resource not found"):
                continue
            raise err
        code = INVALID_PARAMS if modern else RESOURCE_NOT_FOUND_LEGACY
        raise RemoteError(code, f"Resource not found: {uri}", {"uri": uri})

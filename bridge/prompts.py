"""Prompts across services, exposed like tools as `<svc>_<prompt>`, and argument completion.

`prompts/get` and `completion/complete` go to the service that owns the prompt (by exposed
name) or the resource template (by its exact URI template).
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec
from msgspec import Raw

from bus import Bus, BusError, tool_token
from schemas import bus as h
from schemas.config import BridgeSettings
from schemas.errors import NO_RESPONDER

from .catalog import exposed_name
from .discovery import Discovery
from .errors import InvalidParams, RemoteError, ServiceDown, reply_error

_encoder: Final = msgspec.json.Encoder()


class _Named(msgspec.Struct):
    name: str


class _Template(msgspec.Struct):
    uriTemplate: str


class Prompts:
    def __init__(self, bus: Bus, discovery: Discovery, settings: BridgeSettings) -> None:
        self._bus = bus
        self._discovery = discovery
        self._settings = settings

    def _exposed(self) -> list[tuple[str, str, str, Raw]]:
        """(exposed name, service, local name, definition) in a deterministic order."""
        out = []
        for svc in self._discovery.prompt_services():
            for raw in self._discovery.prompts.get(svc, []):
                try:
                    local = msgspec.json.decode(raw, type=_Named).name
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                out.append(
                    (
                        exposed_name(svc, local, self._settings.tool_separator, self._settings.max_tool_name),
                        svc,
                        local,
                        raw,
                    )
                )
        return out

    def list_all(self) -> list[Raw]:
        items = []
        for exposed, _svc, _local, raw in self._exposed():
            d = msgspec.json.decode(raw)
            d["name"] = exposed
            items.append(Raw(_encoder.encode(d)))
        return items

    def resolve(self, exposed: str) -> tuple[str, str]:
        for name, svc, local, _raw in self._exposed():
            if name == exposed:
                return svc, local
        raise InvalidParams(f"Unknown prompt: {exposed}")

    async def get(self, params: Raw, version: str) -> Raw:
        p = msgspec.json.decode(params)
        svc, local = self.resolve(str(p.get("name", "")))
        p["name"] = local
        return await self._request(svc, f"prompts.get.{tool_token(local)}", p, version)

    async def complete(self, params: Raw, version: str) -> Raw:
        p: dict[str, Any] = msgspec.json.decode(params)
        ref = p.get("ref") or {}
        if ref.get("type") == "ref/prompt":
            svc, local = self.resolve(str(ref.get("name", "")))
            p["ref"] = {**ref, "name": local}
        elif ref.get("type") == "ref/resource":
            svc = self._template_owner(str(ref.get("uri", "")))
        else:
            raise InvalidParams(f"unknown completion reference type {ref.get('type')!r}")
        return await self._request(svc, "completion.complete", p, version)

    def _template_owner(self, template: str) -> str:
        for svc in self._discovery.resource_services():
            for raw in self._discovery.templates.get(svc, []):
                try:
                    if msgspec.json.decode(raw, type=_Template).uriTemplate == template:
                        return svc
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
        raise InvalidParams(f"Unknown resource template: {template}")

    async def _request(self, svc: str, op: str, body: dict[str, Any], version: str) -> Raw:
        headers = {h.PROTOCOL_VERSION: version, h.DEADLINE: str(int((time.time() + 30) * 1000))}
        try:
            reply = await self._bus.request(
                self._bus.subjects.op(svc, op), _encoder.encode(body), headers, timeout=30
            )
        except BusError as exc:
            if exc.code == NO_RESPONDER:
                raise ServiceDown(svc) from None
            raise RemoteError(exc.code, str(exc)) from None
        err = reply_error(reply.headers, reply.data)
        if err is not None:
            raise err
        return Raw(reply.data)

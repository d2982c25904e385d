"""The non-tool operations of a service: resources, prompts, completion. Bytes in, bytes out.

Each function takes the request body (and what it needs of the headers), returns the encoded
result, and raises ProtocolError for a request that cannot be answered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import msgspec
from msgspec import UNSET, Struct, UnsetType

from bus import tool_token
from schemas.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from schemas.mcp import CACHE_HINTS_PRIVATE, RESOURCE_NOT_FOUND_LEGACY

from .errors import ProtocolError, ToolError
from .prompts import complete
from .resources import ResourceNotFound, to_contents
from .service import Service

log = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder()
# 2026-07-28 cache hints on list/read results: live data, per caller (legacy clients ignore them).
CACHE_HINTS: Final = CACHE_HINTS_PRIVATE


class _ReadParams(Struct, kw_only=True):
    uri: str


class _GetPromptParams(Struct, kw_only=True):
    name: str
    arguments: dict[str, str] | None = None


class _Ref(Struct, kw_only=True):
    type: str
    name: str | UnsetType = UNSET
    uri: str | UnsetType = UNSET


class _Argument(Struct, kw_only=True):
    name: str
    value: str


class _CompleteContext(Struct, kw_only=True):
    arguments: dict[str, str] | None = None


class _CompleteParams(Struct, kw_only=True):
    ref: _Ref
    argument: _Argument
    context: _CompleteContext | UnsetType = UNSET


def _decode(data: bytes, tp: type[Any], what: str) -> Any:
    try:
        return msgspec.json.decode(data, type=tp)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(INVALID_PARAMS, f"invalid {what} params: {exc}") from None


def resources_list(service: Service) -> bytes:
    entries = [r.entry for r in service.resources.values()]
    if service.lister is not None:
        try:
            entries.extend(service.lister())
        except Exception:
            log.exception("listing the resources of %s failed", service.name)
    return _encoder.encode({"resources": entries, **CACHE_HINTS})


def templates_list(service: Service) -> bytes:
    return _encoder.encode({"resourceTemplates": [t.entry for t in service.templates], **CACHE_HINTS})


async def resources_read(service: Service, data: bytes, modern: bool) -> bytes:
    uri = _decode(data, _ReadParams, "resources/read").uri
    not_found = INVALID_PARAMS if modern else RESOURCE_NOT_FOUND_LEGACY
    fixed = service.resources.get(uri)
    fn: Any = None
    kwargs: dict[str, str] = {}
    mime: Any = UNSET
    if fixed is not None:
        fn, mime = fixed.fn, fixed.entry.mimeType
    else:
        for t in service.templates:
            found = t.match(uri)
            if found is not None:
                fn, kwargs, mime = t.fn, found, t.entry.mimeType
                break
    if fn is None:
        raise ProtocolError(not_found, f"Resource not found: {uri}", {"uri": uri})
    try:
        value = (
            await fn(**kwargs) if asyncio.iscoroutinefunction(fn) else await asyncio.to_thread(fn, **kwargs)
        )
        contents = to_contents(uri, value, mime)
    except ResourceNotFound as exc:
        raise ProtocolError(not_found, str(exc), {"uri": uri}) from None
    except ToolError as exc:
        raise ProtocolError(not_found, str(exc), {"uri": uri}) from None
    except Exception:
        log.exception("reading %s failed", uri)
        raise ProtocolError(INTERNAL_ERROR, f"reading {uri} failed with an internal error") from None
    return _encoder.encode({"contents": contents, **CACHE_HINTS})


def prompts_list(service: Service) -> bytes:
    return _encoder.encode({"prompts": [p.definition() for p in service.prompts.values()], **CACHE_HINTS})


def prompts_get(service: Service, token: str, data: bytes) -> bytes:
    p = _decode(data, _GetPromptParams, "prompts/get")
    spec = service.prompts.get(p.name)
    if spec is None or tool_token(p.name) != token:  # the subject and the body must name the same prompt
        raise ProtocolError(INVALID_PARAMS, f"Unknown prompt: {p.name}")
    try:
        result = spec.render(p.arguments or {})
    except ToolError as exc:
        raise ProtocolError(INVALID_PARAMS, str(exc)) from None
    except Exception:
        log.exception("prompt %s failed", p.name)
        raise ProtocolError(INTERNAL_ERROR, f"prompt {p.name} failed with an internal error") from None
    return _encoder.encode({**result, "resultType": "complete"})


def completion_complete(service: Service, data: bytes) -> bytes:
    p = _decode(data, _CompleteParams, "completion/complete")
    target = p.ref.name if p.ref.type == "ref/prompt" else p.ref.uri
    if p.ref.type not in ("ref/prompt", "ref/resource") or target is UNSET:
        raise ProtocolError(INVALID_PARAMS, f"unknown completion reference {p.ref.type!r}")
    if p.ref.type == "ref/prompt" and target not in service.prompts:
        raise ProtocolError(INVALID_PARAMS, f"Unknown prompt: {target}")
    if p.ref.type == "ref/resource" and not any(t.entry.uriTemplate == target for t in service.templates):
        raise ProtocolError(INVALID_PARAMS, f"Unknown resource template: {target}")
    completer = service.completers.get((p.ref.type, str(target), p.argument.name))
    context = (p.context.arguments or {}) if p.context is not UNSET else {}
    try:
        completion = complete(completer, p.argument.value, context)
    except Exception:
        log.exception("completion for %s failed", target)
        completion = complete(None, "", {})
    return _encoder.encode({"completion": completion, "resultType": "complete"})

"""The MCP methods of the bridge, both protocol eras, behind the per-request seam.

Legacy clients (`initialize`, 2024-11-05 .. 2025-11-25) get a session; modern clients
(2026-07-28) are recognised per request by `params._meta`, and `server/discover` is answered
at once, locally, before any bus round trip (Claude Code gives its probe ~3 s). Every request
is one `BridgeRequest` on the seam (bridge/seam.py): observers see it begin before any bus
round trip (a tracing observer sets the trace context the bus request carries) and end after
its response was written.
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, Protocol

import msgspec
from msgspec import UNSET, Raw

from schemas import bus as bus_h
from schemas.config import Settings
from schemas.jsonrpc import Message, encode_error, encode_notification, encode_result
from schemas.mcp import (
    BATCH_VERSIONS,
    CACHE_HINTS_PUBLIC,
    META_SERVER_INFO,
    META_SUBSCRIPTION_ID,
    MODERN_VERSIONS,
    CallToolParams,
    InitializeParams,
    InputRequiredResult,
    MetaOnlyParams,
    PaginatedParams,
    RequestMeta,
    negotiate_version,
)
from schemas.observe import BridgeRequest

from .catalog import Catalog, InvalidCursor
from .dispatch import Write
from .errors import InvalidParams, MethodNotFound, UnsupportedVersion, to_error
from .notices import Notices
from .outgoing import Outgoing
from .paging import page
from .seam import BridgeSeam

VERSION: Final = "0.1.0"
SERVER_INFO: Final = {"name": "mcp-nats", "title": "MCP services on NATS", "version": VERSION}
INSTRUCTIONS: Final = (
    "Tools of the MCP services running on a NATS bus, named <service>_<tool> (for example fs_read_text_file). "
    "A service with no running responder disappears from the list; start one with `mcp-nats serve <service>`."
)
LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
_LOG_LEVELS: Final = frozenset(typing.get_args(LogLevel))
_MAX_INPUT_ROUNDS: Final = 8
_TRACE_KEY: Final = b"traceparent"
_IS_ERROR: Final = b'"isError":true'


class _ReadParams(msgspec.Struct):
    uri: str


class _LevelParams(msgspec.Struct):
    level: LogLevel


_encoder: Final = msgspec.json.Encoder()
_init_decoder: Final = msgspec.json.Decoder(InitializeParams)
_meta_decoder: Final = msgspec.json.Decoder(MetaOnlyParams)
_page_decoder: Final = msgspec.json.Decoder(PaginatedParams)
_call_decoder: Final = msgspec.json.Decoder(CallToolParams)
_listen_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_level_decoder: Final = msgspec.json.Decoder(_LevelParams)
_input_decoder: Final = msgspec.json.Decoder(InputRequiredResult)
_read_decoder: Final = msgspec.json.Decoder(_ReadParams)
_HINTS: Final = b"," + _encoder.encode(CACHE_HINTS_PUBLIC)[1:-1]

Handler = Callable[[Message, RequestMeta | None, BridgeRequest], Awaitable[bytes]]


class Upstream(Protocol):
    """What the methods need from the bus side (bridge/upstream.py implements it)."""

    async def catalog(self) -> Catalog: ...
    async def call_tool(
        self,
        name: str,
        params: CallToolParams,
        *,
        protocol_version: str,
        notify: Callable[[bytes], None],
        headers: dict[str, str],
        req: BridgeRequest,
    ) -> Raw: ...
    async def list_prompts(self) -> list[Raw]: ...
    async def get_prompt(self, params: Raw, version: str) -> Raw: ...
    async def complete(self, params: Raw, version: str) -> Raw: ...
    async def list_resources(self) -> list[Raw]: ...
    async def list_templates(self) -> list[Raw]: ...
    async def read_resource(self, uri: str, params: Raw, protocol_version: str, modern: bool) -> Raw: ...


class Methods:
    """Implements dispatch.Handlers for one MCP client."""

    def __init__(
        self,
        settings: Settings,
        write: Write,
        upstream: Upstream,
        seam: BridgeSeam | None = None,
        notices: Notices | None = None,
    ) -> None:
        self._settings = settings
        self._write = write
        self._up = upstream
        self._seam = seam or BridgeSeam()
        self.version: str | None = None  # negotiated handshake version (legacy era)
        self.client_capabilities: Raw = Raw(b"{}")
        self.log_level: str | None = None  # legacy: set by logging/setLevel
        self.notices = notices or Notices(write)
        self._page_size = settings.bridge.page_size
        self._outgoing = Outgoing(write, settings.bridge.call_timeout)
        self._handlers: dict[str, Handler] = {
            "initialize": self._initialize,
            "server/discover": self._discover,
            "ping": self._ping,
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            "resources/list": self._resources_list,
            "resources/templates/list": self._templates_list,
            "resources/read": self._resources_read,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
            "prompts/list": self._prompts_list,
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
            "logging/setLevel": self._set_level,
        }

    # -- dispatch.Handlers --------------------------------------------------------------------

    def batch_refusal(self) -> str | None:
        if self.version in BATCH_VERSIONS:
            return None
        return f"JSON-RPC batches are not allowed in protocol version {self.version or '(none negotiated)'}"

    def notification(self, msg: Message) -> None:
        if msg.method == "notifications/initialized":
            self.notices.initialized = True
        # cancellation is the dispatcher's; every other notification (roots/list_changed, progress
        # from the client...) needs nothing from us

    def response(self, msg: Message) -> None:
        self._outgoing.answer(msg)

    async def request(self, msg: Message, write: Write) -> None:
        assert isinstance(msg.method, str) and msg.id is not UNSET and msg.id is not None
        req = BridgeRequest(
            method=msg.method,
            request_id=msg.id,
            protocol_version=self.version or "",
            started_ns=time.perf_counter_ns(),
        )
        params = b"" if msg.params is UNSET else bytes(msg.params)  # one copy, searched twice
        _client_trace(params, req)
        self._seam.started(req)
        try:
            meta = _meta(params)
            if meta is not None and isinstance(meta.protocol_version, str):
                req.protocol_version = meta.protocol_version
            handler = self._handlers.get(msg.method)
            if handler is None:
                if msg.method == "subscriptions/listen":
                    await self._listen(msg, write)
                    return
                raise MethodNotFound(msg.method)
            result = await handler(msg, meta, req)
            if req.method == "tools/call" and result.find(_IS_ERROR) >= 0:
                req.outcome = "tool_error"
            write(encode_result(msg.id, Raw(result)))
        except asyncio.CancelledError:
            req.outcome = "cancelled"
            return  # cancelled by the client (no response, per MCP) or at shutdown
        except Exception as exc:
            code, message, data = to_error(exc)
            req.outcome, req.code = "error", code
            write(encode_error(msg.id, code, message, UNSET if data is None else data))
        finally:
            req.duration_ns = time.perf_counter_ns() - req.started_ns
            self._seam.ended(req)

    def _version(self, meta: RequestMeta | None) -> str:
        version = meta.protocol_version if meta is not None else (self.version or "")
        assert isinstance(version, str)
        return version

    # -- answered here ------------------------------------------------------------------------

    def _capabilities(self) -> dict[str, Any]:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }

    async def _initialize(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("initialize needs params with protocolVersion")
        try:
            p = _init_decoder.decode(msg.params)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid initialize params: {exc}") from None
        self.version = req.protocol_version = negotiate_version(p.protocolVersion)
        self.client_capabilities = p.capabilities
        return _encoder.encode(
            {
                "protocolVersion": self.version,
                "capabilities": self._capabilities(),
                "serverInfo": SERVER_INFO,
                "instructions": INSTRUCTIONS,
            }
        )

    async def _discover(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        return _encoder.encode(
            {
                "resultType": "complete",
                "supportedVersions": list(MODERN_VERSIONS),
                "capabilities": self._capabilities(),
                "instructions": INSTRUCTIONS,
                **CACHE_HINTS_PUBLIC,
                "_meta": {META_SERVER_INFO: SERVER_INFO},
            }
        )

    async def _ping(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        return b"{}"

    async def _set_level(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("logging/setLevel needs params with a level")
        try:
            level = _level_decoder.decode(msg.params).level
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid logging/setLevel params: {exc}") from None
        self.log_level = level
        return b"{}"

    async def _subscribe(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        self.notices.subscriptions.add(self._uri(msg, req))
        return b"{}"

    async def _unsubscribe(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        self.notices.subscriptions.discard(self._uri(msg, req))
        return b"{}"

    async def _listen(self, msg: Message, write: Write) -> None:
        """`subscriptions/listen` (2026-07-28): acknowledge what we honour, then hold the stream open."""
        assert msg.id is not UNSET and msg.id is not None
        requested: dict[str, Any] = {}
        if msg.params is not UNSET:
            try:
                requested = _listen_decoder.decode(msg.params).get("notifications") or {}
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise InvalidParams(f"invalid subscriptions/listen params: {exc}") from None
        if not isinstance(requested, dict):
            raise InvalidParams("notifications must be an object")
        agreed = self.notices.agree(requested)
        key = self.notices.listen(msg.id, agreed)
        ack = {"notifications": agreed, "_meta": {META_SUBSCRIPTION_ID: msg.id}}
        write(encode_notification("notifications/subscriptions/acknowledged", Raw(_encoder.encode(ack))))
        try:
            await asyncio.Event().wait()  # ends when the client cancels it or the bridge exits
        finally:
            self.notices.unlisten(key)

    # -- forwarded to the bus -----------------------------------------------------------------

    async def _tools_list(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        cursor = self._cursor(msg)
        catalog = await self._up.catalog()
        try:
            entries, nxt = catalog.page(cursor, self._page_size)
        except InvalidCursor as exc:
            raise InvalidParams(f"invalid cursor: {exc}") from None
        parts = [b'{"tools":', catalog.encode_tools(entries)]
        if nxt is not None:
            parts.append(b',"nextCursor":' + _encoder.encode(nxt))
        if meta is not None:
            # Discovery is live and list changes are notified, so results are fresh only now.
            parts.append(_HINTS + b',"_meta":')
            parts.append(_encoder.encode({META_SERVER_INFO: SERVER_INFO}))
        parts.append(b"}")
        return b"".join(parts)

    async def _tools_call(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("tools/call needs params with a tool name")
        try:
            p = _call_decoder.decode(msg.params)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid tools/call params: {exc}") from None
        req.tool = p.name
        version = self._version(meta)
        headers = self._call_headers(meta, req)
        up = self._up
        result = bytes(
            await up.call_tool(
                p.name, p, protocol_version=version, notify=self._write, headers=headers, req=req
            )
        )
        if meta is not None:
            return result  # a 2026-07-28 client drives input_required rounds itself
        rounds = 0
        while result.find(b'"resultType":"input_required"') >= 0:
            # A legacy client gets the real server-to-client requests; the call is re-issued with the answers.
            rounds += 1
            if rounds > _MAX_INPUT_ROUNDS:
                raise InvalidParams(
                    f"{p.name} asked for input more than {_MAX_INPUT_ROUNDS} times; giving up"
                )
            need = _input_decoder.decode(result)
            answers: dict[str, Any] = {}
            for key, request in need.inputRequests.items():
                answers[key] = await self._outgoing.ask(
                    str(request.get("method")), request.get("params") or {}
                )
            p = msgspec.structs.replace(
                p, inputResponses=Raw(_encoder.encode(answers)), requestState=need.requestState
            )
            result = bytes(
                await up.call_tool(
                    p.name, p, protocol_version=version, notify=self._write, headers=headers, req=req
                )
            )
        return result

    def _call_headers(self, meta: RequestMeta | None, req: BridgeRequest) -> dict[str, str]:
        """The client's capabilities and log level, for the responder (it may ask for input or log),
        and the trace context the seam chose (the client's, or the bridge's own span)."""
        headers: dict[str, str] = {}
        if meta is not None:
            if meta.client_capabilities is not UNSET:
                headers[bus_h.CLIENT_CAPABILITIES] = bytes(meta.client_capabilities).decode()
            if meta.log_level is not UNSET:
                headers[bus_h.LOG_LEVEL] = meta.log_level
        else:
            headers[bus_h.CLIENT_CAPABILITIES] = bytes(self.client_capabilities).decode()
            if self.log_level is not None:
                headers[bus_h.LOG_LEVEL] = self.log_level
        if req.traceparent:
            headers[bus_h.TRACEPARENT] = req.traceparent
            if req.tracestate:
                headers[bus_h.TRACESTATE] = req.tracestate
        for v in headers.values():
            if "\r" in v or "\n" in v:
                raise InvalidParams("client capabilities and trace context must be one line each")
        return headers

    async def _prompts_list(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        return self._page(b"prompts", await self._up.list_prompts(), self._cursor(msg), meta)

    async def _prompts_get(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("prompts/get needs params with a name")
        return bytes(await self._up.get_prompt(msg.params, self._version(meta)))

    async def _complete(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("completion/complete needs params with ref and argument")
        return bytes(await self._up.complete(msg.params, self._version(meta)))

    async def _resources_list(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        return self._page(b"resources", await self._up.list_resources(), self._cursor(msg), meta)

    async def _templates_list(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        return self._page(b"resourceTemplates", await self._up.list_templates(), self._cursor(msg), meta)

    async def _resources_read(self, msg: Message, meta: RequestMeta | None, req: BridgeRequest) -> bytes:
        uri = self._uri(msg, req)
        assert msg.params is not UNSET
        return bytes(await self._up.read_resource(uri, msg.params, self._version(meta), meta is not None))

    # -- params -------------------------------------------------------------------------------

    def _uri(self, msg: Message, req: BridgeRequest) -> str:
        if msg.params is UNSET:
            raise InvalidParams(f"{msg.method} needs params with a uri")
        try:
            req.uri = _read_decoder.decode(msg.params).uri
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid {msg.method} params: {exc}") from None
        return req.uri

    def _cursor(self, msg: Message) -> str | None:
        if msg.params is UNSET:
            return None
        try:
            p = _page_decoder.decode(msg.params)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid {msg.method} params: {exc}") from None
        return None if p.cursor is UNSET else p.cursor

    def _page(self, key: bytes, items: list[Raw], cursor: str | None, meta: RequestMeta | None) -> bytes:
        return page(key, items, cursor, self._page_size, meta is not None)


def _meta(params: bytes) -> RequestMeta | None:
    """The request's `_meta` when it is a modern (2026-07-28) request, else None. Checks the version."""
    if params.find(b"io.modelcontextprotocol/protocolVersion") < 0:
        return None
    try:
        p = _meta_decoder.decode(params)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidParams(f"invalid _meta: {exc}") from None
    meta = p.meta
    if meta is UNSET or meta.protocol_version is UNSET:
        return None
    if meta.protocol_version not in MODERN_VERSIONS:
        raise UnsupportedVersion(meta.protocol_version)
    if meta.client_capabilities is UNSET:
        raise InvalidParams("_meta must carry io.modelcontextprotocol/clientCapabilities")
    if meta.log_level is not UNSET and meta.log_level not in _LOG_LEVELS:
        raise InvalidParams(f"invalid log level {meta.log_level!r}")
    return meta


def _client_trace(params: bytes, req: BridgeRequest) -> None:
    """The client's W3C trace context from `params._meta` (both eras), when it sent one; never raises."""
    if params.find(_TRACE_KEY) < 0:
        return
    try:
        meta = _meta_decoder.decode(params).meta
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if meta is UNSET:
        return
    if isinstance(meta.traceparent, str) and "\n" not in meta.traceparent and "\r" not in meta.traceparent:
        req.client_traceparent = req.traceparent = meta.traceparent
        if isinstance(meta.tracestate, str) and "\n" not in meta.tracestate and "\r" not in meta.tracestate:
            req.client_tracestate = req.tracestate = meta.tracestate
    if isinstance(meta.baggage, str):
        req.client_baggage = meta.baggage

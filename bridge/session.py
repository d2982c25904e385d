"""The MCP server side of the bridge: one client on stdio, both protocol eras.

Owns the request tasks and listen subscriptions of the client. Every request runs in its
own task, so a slow tool never holds up a `ping` or another call; notifications are handled
in arrival order. Legacy clients (`initialize`, 2024-11-05 .. 2025-11-25) get a session;
modern clients (2026-07-28) are recognised per request by `params._meta`, and `server/discover`
is answered at once, locally, before any bus round trip (Claude Code gives its probe ~3 s).
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, Protocol

import msgspec
from msgspec import UNSET, Raw

from schemas import bus as bus_h
from schemas.config import Settings
from schemas.jsonrpc import (
    INVALID_REQUEST,
    Invalid,
    Message,
    RequestId,
    decode_message,
    encode_error,
    encode_notification,
    encode_result,
)
from schemas.mcp import (
    BATCH_VERSIONS,
    META_SERVER_INFO,
    META_SUBSCRIPTION_ID,
    MODERN_VERSIONS,
    CallToolParams,
    CancelledParams,
    InitializeParams,
    InputRequiredResult,
    MetaOnlyParams,
    PaginatedParams,
    RequestMeta,
    negotiate_version,
)

from .catalog import Catalog, InvalidCursor
from .errors import InvalidParams, MethodNotFound, UnsupportedVersion, to_error
from .outgoing import Outgoing
from .paging import page
from .stdio import OVERLONG

log = logging.getLogger(__name__)

VERSION: Final = "0.1.0"
SERVER_INFO: Final = {"name": "mcp-nats", "title": "MCP services on NATS", "version": VERSION}
INSTRUCTIONS: Final = (
    "Tools of the MCP services running on a NATS bus, named <service>_<tool> (for example fs_read_text_file). "
    "A service with no running responder disappears from the list; start one with `mcp-nats serve <service>`."
)
_encoder: Final = msgspec.json.Encoder()
_init_decoder: Final = msgspec.json.Decoder(InitializeParams)
_meta_decoder: Final = msgspec.json.Decoder(MetaOnlyParams)
_page_decoder: Final = msgspec.json.Decoder(PaginatedParams)
_call_decoder: Final = msgspec.json.Decoder(CallToolParams)
_cancel_decoder: Final = msgspec.json.Decoder(CancelledParams)
_listen_decoder: Final = msgspec.json.Decoder(dict[str, Any])


class _ReadParams(msgspec.Struct):
    uri: str


LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


class _LevelParams(msgspec.Struct):
    level: LogLevel


_level_decoder: Final = msgspec.json.Decoder(_LevelParams)
_LOG_LEVELS: Final = frozenset(typing.get_args(LogLevel))
_input_decoder: Final = msgspec.json.Decoder(InputRequiredResult)
_MAX_INPUT_ROUNDS: Final = 8
_LIST_FLAGS: Final = {"tools": "toolsListChanged", "resources": "resourcesListChanged", "prompts": "promptsListChanged"}


_read_decoder: Final = msgspec.json.Decoder(_ReadParams)


class Upstream(Protocol):
    """What the session needs from the bus side (bridge/app.py implements it)."""

    async def catalog(self) -> Catalog: ...
    async def refresh(self) -> Catalog: ...
    async def call_tool(
        self,
        name: str,
        params: CallToolParams,
        *,
        protocol_version: str,
        notify: Callable[[bytes], None],
        headers: dict[str, str] | None = None,
    ) -> Raw: ...
    async def list_prompts(self) -> list[Raw]: ...
    async def get_prompt(self, params: Raw, version: str) -> Raw: ...
    async def complete(self, params: Raw, version: str) -> Raw: ...
    async def list_resources(self) -> list[Raw]: ...
    async def list_templates(self) -> list[Raw]: ...
    async def read_resource(self, uri: str, params: Raw, protocol_version: str, modern: bool) -> Raw: ...


def _key(id: RequestId) -> tuple[type, RequestId]:
    return (type(id), id)  # 1 and "1" are different ids


class Session:
    def __init__(self, settings: Settings, write: Callable[[bytes], None], upstream: Upstream) -> None:
        self._settings = settings
        self._write = write
        self._up = upstream
        self.version: str | None = None  # negotiated handshake version (legacy era)
        self.initialized = False
        self.client_capabilities: Raw = Raw(b"{}")
        self._tasks: dict[tuple[type, RequestId], asyncio.Task[None]] = {}
        self._listens: dict[tuple[type, RequestId], tuple[RequestId, dict[str, Any]]] = {}
        self._page_size = settings.bridge.page_size
        self._max_inflight = settings.bridge.max_inflight
        self._room = asyncio.Event()
        self._room.set()
        self._handlers: dict[str, Callable[[Message, RequestMeta | None], Awaitable[bytes]]] = {
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
        self.log_level: str | None = None  # legacy: set by logging/setLevel
        self.subscriptions: set[str] = set()  # legacy: resources/subscribe
        self._outgoing = Outgoing(write, settings.bridge.call_timeout)

    # -- input ------------------------------------------------------------------------------

    def feed(self, line: bytes) -> None:
        """Handle one stdin line (never raises: every problem becomes a JSON-RPC error or is ignored)."""
        if line is OVERLONG:
            limit = self._settings.bridge.max_line_bytes
            self._write(encode_error(None, INVALID_REQUEST, f"the message is longer than {limit} bytes and was skipped"))
            return
        if line.lstrip()[:1] == b"[":
            self._batch(line)
            return
        try:
            msg = decode_message(line)
        except Invalid as exc:
            if exc.respond:
                self._write(encode_error(exc.id, exc.code, exc.message))
            return
        self._dispatch(msg, self._write)

    def _dispatch(self, msg: Message, write: Callable[[bytes], None]) -> asyncio.Task[None] | None:
        if msg.method is UNSET:
            self._outgoing.answer(msg)
            return None
        if msg.id is UNSET:
            self._notification(msg)
            return None
        assert msg.id is not None  # decode_message refuses a request with a null id
        key = _key(msg.id)
        if key in self._tasks:
            write(encode_error(msg.id, INVALID_REQUEST, f"request id {msg.id!r} is already in use by a request in flight"))
            return None
        task = asyncio.create_task(self._request(msg, write))
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._finished(key))
        if len(self._tasks) >= self._max_inflight:
            self._room.clear()
        return task

    def _finished(self, key: tuple[type, RequestId]) -> None:
        self._tasks.pop(key, None)
        if len(self._tasks) < self._max_inflight:
            self._room.set()

    async def room(self) -> None:
        """Returns once fewer than max_inflight requests are in flight (backpressure on stdin)."""
        await self._room.wait()

    def _batch(self, line: bytes) -> None:
        if self.version not in BATCH_VERSIONS:
            self._write(encode_error(None, INVALID_REQUEST, f"JSON-RPC batches are not allowed in protocol version {self.version or '(none negotiated)'}"))
            return
        try:
            items = msgspec.json.decode(line, type=list[Raw])
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            self._write(encode_error(None, -32700, "the batch is not valid JSON"))
            return
        if not items:
            self._write(encode_error(None, INVALID_REQUEST, "an empty batch is invalid"))
            return
        replies: list[bytes] = []
        tasks: list[asyncio.Task[None]] = []
        for item in items:
            try:
                msg = decode_message(bytes(item))
            except Invalid as exc:
                if exc.respond:
                    replies.append(encode_error(exc.id, exc.code, exc.message))
                continue
            t = self._dispatch(msg, replies.append)  # each request passes every per-request check
            if t is not None:
                tasks.append(t)

        async def finish() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)
            if replies:
                self._write(b"[" + b",".join(replies) + b"]")

        task = asyncio.create_task(finish())
        key = _key(f"\x00batch{id(task)}")
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._finished(key))

    def _notification(self, msg: Message) -> None:
        method = msg.method
        if method == "notifications/initialized":
            self.initialized = True
        elif method == "notifications/cancelled":
            try:
                p = _cancel_decoder.decode(msg.params) if msg.params is not UNSET else None
            except (msgspec.DecodeError, msgspec.ValidationError):
                return  # malformed notifications are ignored (MCP cancellation)
            if p is None:
                return
            key = _key(p.requestId)
            if key in self._listens:
                self._listens.pop(key, None)
            task = self._tasks.get(key)
            if task is not None:
                task.cancel()
        # every other notification (roots/list_changed, progress from the client...) needs nothing from us

    async def _request(self, msg: Message, write: Callable[[bytes], None]) -> None:
        assert isinstance(msg.method, str) and msg.id is not UNSET and msg.id is not None
        try:
            meta = self._meta(msg)
            handler = self._handlers.get(msg.method)
            if handler is None:
                if msg.method == "subscriptions/listen":
                    await self._listen(msg, meta, write)
                    return
                raise MethodNotFound(msg.method)
            result = await handler(msg, meta)
            write(encode_result(msg.id, Raw(result)))
        except asyncio.CancelledError:
            return  # cancelled by the client (no response, per MCP) or at shutdown
        except Exception as exc:
            code, message, data = to_error(exc)
            write(encode_error(msg.id, code, message, UNSET if data is None else data))

    def _meta(self, msg: Message) -> RequestMeta | None:
        """The request's `_meta` when it is a modern (2026-07-28) request, else None. Checks the version."""
        if msg.params is UNSET or bytes(msg.params).find(b"io.modelcontextprotocol/protocolVersion") < 0:
            return None
        try:
            p = _meta_decoder.decode(msg.params)
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

    # -- local methods ----------------------------------------------------------------------

    def _capabilities(self) -> dict[str, Any]:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }

    async def _initialize(self, msg: Message, meta: RequestMeta | None) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("initialize needs params with protocolVersion")
        try:
            p = _init_decoder.decode(msg.params)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid initialize params: {exc}") from None
        self.version = negotiate_version(p.protocolVersion)
        self.client_capabilities = p.capabilities
        return _encoder.encode(
            {
                "protocolVersion": self.version,
                "capabilities": self._capabilities(),
                "serverInfo": SERVER_INFO,
                "instructions": INSTRUCTIONS,
            }
        )

    async def _discover(self, msg: Message, meta: RequestMeta | None) -> bytes:
        return _encoder.encode(
            {
                "resultType": "complete",
                "supportedVersions": list(MODERN_VERSIONS),
                "capabilities": self._capabilities(),
                "instructions": INSTRUCTIONS,
                "ttlMs": 0,
                "cacheScope": "public",
                "_meta": {META_SERVER_INFO: SERVER_INFO},
            }
        )

    async def _ping(self, msg: Message, meta: RequestMeta | None) -> bytes:
        return b"{}"

    async def _tools_list(self, msg: Message, meta: RequestMeta | None) -> bytes:
        cursor: str | None = None
        if msg.params is not UNSET:
            try:
                p = _page_decoder.decode(msg.params)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise InvalidParams(f"invalid tools/list params: {exc}") from None
            cursor = None if p.cursor is UNSET else p.cursor
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
            parts.append(b',"resultType":"complete","ttlMs":0,"cacheScope":"public","_meta":')
            parts.append(_encoder.encode({META_SERVER_INFO: SERVER_INFO}))
        parts.append(b"}")
        return b"".join(parts)

    async def _tools_call(self, msg: Message, meta: RequestMeta | None) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("tools/call needs params with a tool name")
        try:
            p = _call_decoder.decode(msg.params)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid tools/call params: {exc}") from None
        version = meta.protocol_version if meta is not None else (self.version or "")
        assert isinstance(version, str)
        headers = self._call_headers(meta)
        result = bytes(await self._up.call_tool(p.name, p, protocol_version=version, notify=self._write, headers=headers))
        if meta is not None:
            return result  # a 2026-07-28 client drives input_required rounds itself
        rounds = 0
        while result.find(b'"resultType":"input_required"') >= 0:
            # A legacy client gets the real server-to-client requests; the call is re-issued with the answers.
            rounds += 1
            if rounds > _MAX_INPUT_ROUNDS:
                raise InvalidParams(f"{p.name} asked for input more than {_MAX_INPUT_ROUNDS} times; giving up")
            need = _input_decoder.decode(result)
            answers: dict[str, Any] = {}
            for key, request in need.inputRequests.items():
                answers[key] = await self._outgoing.ask(str(request.get("method")), request.get("params") or {})
            p = msgspec.structs.replace(p, inputResponses=Raw(_encoder.encode(answers)), requestState=need.requestState)
            result = bytes(await self._up.call_tool(p.name, p, protocol_version=version, notify=self._write, headers=headers))
        return result

    def _call_headers(self, meta: RequestMeta | None) -> dict[str, str]:
        """The client's capabilities and log level, for the responder (it may ask for input or log)."""
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
        for v in headers.values():
            if "\r" in v or "\n" in v:
                raise InvalidParams("client capabilities must be one line of JSON")
        return headers

    async def _subscribe(self, msg: Message, meta: RequestMeta | None) -> bytes:
        self.subscriptions.add(self._uri(msg))
        return b"{}"

    async def _unsubscribe(self, msg: Message, meta: RequestMeta | None) -> bytes:
        self.subscriptions.discard(self._uri(msg))
        return b"{}"

    def _uri(self, msg: Message) -> str:
        if msg.params is UNSET:
            raise InvalidParams("params with a uri are required")
        try:
            return _read_decoder.decode(msg.params).uri
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid params: {exc}") from None

    async def _prompts_list(self, msg: Message, meta: RequestMeta | None) -> bytes:
        cursor = self._cursor(msg)
        return self._page(b"prompts", await self._up.list_prompts(), cursor, meta)

    async def _prompts_get(self, msg: Message, meta: RequestMeta | None) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("prompts/get needs params with a name")
        version = meta.protocol_version if meta is not None else (self.version or "")
        assert isinstance(version, str)
        return bytes(await self._up.get_prompt(msg.params, version))

    async def _complete(self, msg: Message, meta: RequestMeta | None) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("completion/complete needs params with ref and argument")
        version = meta.protocol_version if meta is not None else (self.version or "")
        assert isinstance(version, str)
        return bytes(await self._up.complete(msg.params, version))

    async def _set_level(self, msg: Message, meta: RequestMeta | None) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("logging/setLevel needs params with a level")
        try:
            level = _level_decoder.decode(msg.params).level
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid logging/setLevel params: {exc}") from None
        self.log_level = level
        return b"{}"

    def _cursor(self, msg: Message) -> str | None:
        if msg.params is UNSET:
            return None
        try:
            p = _page_decoder.decode(msg.params)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid params: {exc}") from None
        return None if p.cursor is UNSET else p.cursor

    def _page(self, key: bytes, items: list[Raw], cursor: str | None, meta: RequestMeta | None) -> bytes:
        return page(key, items, cursor, self._page_size, meta is not None)

    async def _resources_list(self, msg: Message, meta: RequestMeta | None) -> bytes:
        cursor = self._cursor(msg)
        return self._page(b"resources", await self._up.list_resources(), cursor, meta)

    async def _templates_list(self, msg: Message, meta: RequestMeta | None) -> bytes:
        cursor = self._cursor(msg)
        return self._page(b"resourceTemplates", await self._up.list_templates(), cursor, meta)

    async def _resources_read(self, msg: Message, meta: RequestMeta | None) -> bytes:
        if msg.params is UNSET:
            raise InvalidParams("resources/read needs params with a uri")
        try:
            uri = _read_decoder.decode(msg.params).uri
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidParams(f"invalid resources/read params: {exc}") from None
        version = meta.protocol_version if meta is not None else (self.version or "")
        assert isinstance(version, str)
        return bytes(await self._up.read_resource(uri, msg.params, version, meta is not None))

    async def _listen(self, msg: Message, meta: RequestMeta | None, write: Callable[[bytes], None]) -> None:
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
        agreed: dict[str, Any] = {k: True for k in _LIST_FLAGS.values() if requested.get(k) is True}
        uris = requested.get("resourceSubscriptions")
        if isinstance(uris, list) and all(isinstance(u, str) for u in uris):
            agreed["resourceSubscriptions"] = uris
        key = _key(msg.id)
        self._listens[key] = (msg.id, agreed)
        write(
            encode_notification(
                "notifications/subscriptions/acknowledged",
                Raw(_encoder.encode({"notifications": agreed, "_meta": {META_SUBSCRIPTION_ID: msg.id}})),
            )
        )
        try:
            await asyncio.Event().wait()  # ends when the client cancels it or the bridge exits
        finally:
            self._listens.pop(key, None)

    # -- events from the bus side -----------------------------------------------------------

    def list_changed(self, kind: str) -> None:
        """A merged list (tools, resources or prompts) changed: tell the client as its era expects."""
        flag = _LIST_FLAGS.get(kind)
        if flag is None:
            return
        method = f"notifications/{kind}/list_changed"
        if self.initialized:
            self._write(encode_notification(method))
        for sub_id, agreed in list(self._listens.values()):
            if agreed.get(flag):
                self._write(encode_notification(method, Raw(_encoder.encode({"_meta": {META_SUBSCRIPTION_ID: sub_id}}))))

    def resource_updated(self, uri: str) -> None:
        """A service says a resource changed: tell the client if it subscribed to that URI."""
        if self.initialized and uri in self.subscriptions:
            self._write(encode_notification("notifications/resources/updated", Raw(_encoder.encode({"uri": uri}))))
        for sub_id, agreed in list(self._listens.values()):
            if uri in agreed.get("resourceSubscriptions", ()):
                params = {"uri": uri, "_meta": {META_SUBSCRIPTION_ID: sub_id}}
                self._write(encode_notification("notifications/resources/updated", Raw(_encoder.encode(params))))

    async def close(self) -> None:
        """Cancel every request in flight (the client is gone) and wait briefly for them to unwind."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=0.5)

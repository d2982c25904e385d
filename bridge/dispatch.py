"""JSON-RPC 2.0 over lines: framing, batches, one task per request, cancellation, backpressure.

Knows nothing of MCP's methods: it hands each request to `Handlers.request` in a task of its
own (so a slow call never holds up a `ping`), notifications in arrival order to
`Handlers.notification`, and responses to our own requests to `Handlers.response`. Owns the
request tasks: `close()` cancels them and waits briefly. Never raises from `feed`: every
problem becomes a JSON-RPC error line or is ignored, as the spec says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

import msgspec
from msgspec import UNSET, Raw

from schemas.errors import INVALID_REQUEST, PARSE_ERROR
from schemas.jsonrpc import Invalid, Message, RequestId, decode_message, encode_error

from .stdio import OVERLONG

Write = Callable[[bytes], None]


class _CancelParams(msgspec.Struct):
    requestId: RequestId


_cancel_decoder: Final = msgspec.json.Decoder(_CancelParams)


class Handlers(Protocol):
    """What a dispatcher serves (bridge/methods.py: the MCP methods)."""

    def batch_refusal(self) -> str | None:
        """None when JSON-RPC batches are allowed now, else the sentence refusing one."""
        ...

    async def request(self, msg: Message, write: Write) -> None:
        """Handle one request and write its one response (or none, when it was cancelled)."""
        ...

    def notification(self, msg: Message) -> None: ...

    def response(self, msg: Message) -> None: ...


def _key(id: RequestId) -> tuple[type, RequestId]:
    return (type(id), id)  # 1 and "1" are different ids


class Dispatcher:
    def __init__(
        self,
        write: Write,
        handlers: Handlers,
        *,
        max_line_bytes: int,
        max_inflight: int,
        cancel_method: str = "notifications/cancelled",
    ) -> None:
        self._write = write
        self._handlers = handlers
        self._max_line_bytes = max_line_bytes
        self._max_inflight = max_inflight
        self._cancel_method = cancel_method
        self._tasks: dict[tuple[type, RequestId], asyncio.Task[None]] = {}
        self._room = asyncio.Event()
        self._room.set()

    def feed(self, line: bytes) -> None:
        """Handle one input line."""
        if line is OVERLONG:
            self._write(
                encode_error(
                    None,
                    INVALID_REQUEST,
                    f"the message is longer than {self._max_line_bytes} bytes and was skipped",
                )
            )
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

    async def room(self) -> None:
        """Returns once fewer than max_inflight requests are in flight (backpressure on the input)."""
        await self._room.wait()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def cancel(self, request_id: RequestId) -> bool:
        """Cancel the request with this id, if it is in flight (it then gets no response)."""
        task = self._tasks.get(_key(request_id))
        if task is None:
            return False
        task.cancel()
        return True

    async def close(self, timeout: float = 0.5) -> None:
        """Cancel every request in flight (the client is gone) and wait briefly for them to unwind."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def _dispatch(self, msg: Message, write: Write) -> asyncio.Task[None] | None:
        if msg.method is UNSET:
            self._handlers.response(msg)
            return None
        if msg.id is UNSET:
            if msg.method == self._cancel_method:
                self._cancelled(msg)
            self._handlers.notification(msg)
            return None
        assert msg.id is not None  # decode_message refuses a request with a null id
        key = _key(msg.id)
        if key in self._tasks:
            write(
                encode_error(
                    msg.id, INVALID_REQUEST, f"request id {msg.id!r} is already in use by a request in flight"
                )
            )
            return None
        return self._own(key, self._handlers.request(msg, write))

    def _own(self, key: tuple[type, RequestId], coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._finished(key))
        if len(self._tasks) >= self._max_inflight:
            self._room.clear()
        return task

    def _finished(self, key: tuple[type, RequestId]) -> None:
        self._tasks.pop(key, None)
        if len(self._tasks) < self._max_inflight:
            self._room.set()

    def _cancelled(self, msg: Message) -> None:
        if msg.params is UNSET:
            return
        try:
            p = _cancel_decoder.decode(msg.params)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return  # malformed notifications are ignored (MCP cancellation)
        self.cancel(p.requestId)

    def _batch(self, line: bytes) -> None:
        refusal = self._handlers.batch_refusal()
        if refusal is not None:
            self._write(encode_error(None, INVALID_REQUEST, refusal))
            return
        try:
            items = msgspec.json.decode(line, type=list[Raw])
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            self._write(encode_error(None, PARSE_ERROR, "the batch is not valid JSON"))
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

        self._own(_key(f"\x00batch{len(self._tasks)}-{id(replies)}"), finish())

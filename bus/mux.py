"""The inbox multiplexer: one wildcard subscription carries the replies to every outgoing call.

Owns the subscription `<prefix>.>`; each call gets a token under it and a frame buffer.
Replies may come in several frames (progress, heartbeats) before the final one. Frames for
a token nobody waits for any more (a late reply after a deadline) are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from schemas import bus as h

from .errors import BusError, DeadlineExceeded, NoResponders, ResponderLost

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription

    from .wire import Wire

log = logging.getLogger(__name__)

_NO_RESPONDERS: Final = "503"
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _b62(n: int) -> str:
    out = []
    while True:
        n, r = divmod(n, 62)
        out.append(_DIGITS[r])
        if not n:
            return "".join(reversed(out))


class Frame:
    """One message received for a call: `kind` is "final", "notification" or "heartbeat"."""

    __slots__ = ("data", "headers", "kind")

    def __init__(self, data: bytes, headers: dict[str, str] | None) -> None:
        self.data = data
        self.headers: dict[str, str] = headers or {}
        self.kind: str = self.headers.get(h.FRAME, "final")

    @property
    def is_final(self) -> bool:
        return self.kind == "final"


class Call:
    """An outstanding request: publish with `reply=call.reply`, then read frames with `next()`."""

    __slots__ = ("_error", "_frames", "_mux", "_waiter", "reply", "subject", "token")

    def __init__(self, mux: Inbox, token: str, subject: str) -> None:
        self._mux = mux
        self.token = token
        self.subject = subject
        self.reply = f"{mux.prefix}.{token}"
        self._frames: deque[Frame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BusError | None = None

    def fail(self, error: BusError) -> None:
        """End the call with `error` (the server refused its publish): `next()` raises it at once."""
        self._error = error
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _deliver(self, data: bytes, headers: dict[str, str] | None) -> None:
        self._frames.append(Frame(data, headers))
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def next(self, idle: float, deadline: float) -> Frame:
        """The next frame. Raises NoResponders, ResponderLost (silence longer than `idle`), DeadlineExceeded.

        `deadline` is absolute (loop time); `idle` bounds the gap between frames and never extends it.
        """
        loop = asyncio.get_running_loop()
        if self._error is not None:
            raise self._error
        if not self._frames:
            now = loop.time()
            remaining = deadline - now
            if remaining <= 0:
                raise DeadlineExceeded(self.subject, 0)
            wait = min(idle, remaining)
            fut: asyncio.Future[None] = loop.create_future()
            self._waiter = fut
            handle = loop.call_later(wait, _expire, fut)
            try:
                await fut
            finally:
                handle.cancel()
                self._waiter = None
            if self._error is not None:
                raise self._error
            if not self._frames:
                if wait < idle:
                    raise DeadlineExceeded(self.subject, wait)
                raise ResponderLost(self.subject, idle)
        frame = self._frames.popleft()
        if not frame.data and frame.headers.get(h.STATUS) == _NO_RESPONDERS:
            raise NoResponders(self.subject)
        return frame

    def close(self) -> None:
        """Stop receiving frames for this call (idempotent)."""
        self._mux._calls.pop(self.token, None)

    def __enter__(self) -> Call:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Inbox:
    """Owns the `<prefix>.>` subscription; `open()` hands out calls keyed by token."""

    def __init__(self, wire: Wire, prefix: str) -> None:
        self._wire = wire
        self.prefix = prefix
        self._calls: dict[str, Call] = {}
        self._next = 0
        self._sub: Subscription | None = None
        self._cut = len(prefix) + 1

    async def start(self) -> None:
        # delivered synchronously (bus/wire.py): no queue, so no burst of replies is dropped as a slow consumer
        self._sub = await self._wire.subscribe(f"{self.prefix}.>", self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # the connection may already be closed; nothing is left to release
                log.debug("inbox unsubscribe failed", exc_info=True)
            self._wire.forget(self._sub)
            self._sub = None
        self._calls.clear()

    def open(self, subject: str) -> Call:
        self._next += 1
        call = Call(self, _b62(self._next), subject)
        self._calls[call.token] = call
        return call

    def refused(self, subject: str, error: Callable[[str], BusError]) -> int:
        """The server refused a publish to `subject` (compared case-insensitively: nats-py lower-cases
        the server's -ERR text): fail every outstanding call to it with `error(call.subject)`."""
        failed = 0
        for call in list(self._calls.values()):
            if call.subject.lower() == subject:
                call.fail(error(call.subject))
                failed += 1
        return failed

    @property
    def outstanding(self) -> int:
        return len(self._calls)

    def _on_msg(self, subject: str, reply: str, data: bytes, headers: dict[str, str] | None) -> None:
        call = self._calls.get(subject[self._cut :])
        if call is not None:
            call._deliver(data, headers)

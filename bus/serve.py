"""Queue-group endpoints: one subscription, a task per request, bounded concurrency, drain on exit.

Owns the subscription and every handler task it starts. The subscription callback never
blocks: it admits the request (or refuses it at once as overloaded when `max_concurrency +
max_pending` are already taken) and a task waits for a handler slot. While a request runs
whose caller asked for liveness frames (`Mcp-Heartbeat`), a heartbeat frame goes to its
reply subject every interval, so the caller can tell a slow handler from a dead instance.
On exit the subscription is drained: nothing new is taken, every admitted request finishes
(bounded by `drain_timeout`), then the endpoint returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final

from schemas import bus as h
from schemas.errors import OVERLOADED

from .errors import BusError
from .wire import Headers, Wire, encode_headers

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

_FRAME_HEADERS: Final = {
    kind: encode_headers({h.FRAME: kind}) for kind in (h.FRAME_HEARTBEAT, h.FRAME_NOTIFICATION)
}
_TICK: Final = 0.2


class Request:
    """One request taken from the bus. Reply exactly once with `respond` or `respond_error`;
    interim frames (`frame`) may precede it when the caller provided a reply subject."""

    __slots__ = (
        "_beat_every",
        "_last_beat",
        "_wire",
        "data",
        "headers",
        "received",
        "replied",
        "reply",
        "subject",
    )

    def __init__(
        self, wire: Wire, subject: str, reply: str, data: bytes, headers: dict[str, str] | None
    ) -> None:
        self._wire = wire
        self.subject = subject
        self.reply = reply
        self.data = data
        self.headers: dict[str, str] = headers or {}
        self.received = time.monotonic()
        self.replied = False
        self._last_beat = self.received
        self._beat_every = 0.0
        beat = self.headers.get(h.HEARTBEAT)
        if beat and reply:
            try:
                self._beat_every = max(0.05, int(beat) / 1000)
            except ValueError:
                self._beat_every = 0.0

    async def respond(self, data: bytes, headers: Headers = None) -> None:
        if self.replied or not self.reply:
            self.replied = True
            return
        self.replied = True
        await self._publish(data, headers)

    async def respond_error(
        self, code: int, message: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Final error reply: ADR-32 headers carry the code and sentence, the body a JSON-RPC error object."""
        hdrs = {
            h.SERVICE_ERROR_CODE: str(code),
            h.SERVICE_ERROR: message.replace("\r", " ").replace("\n", " "),
        }
        if headers:
            hdrs.update(headers)
        await self.respond(body, hdrs)

    async def frame(self, data: bytes, kind: str = h.FRAME_NOTIFICATION) -> None:
        """An interim frame (notification or heartbeat) before the final reply."""
        if self.replied or not self.reply:
            return
        self._last_beat = time.monotonic()
        await self._publish(data, _FRAME_HEADERS.get(kind) or {h.FRAME: kind})

    async def _publish(self, data: bytes, headers: Headers) -> None:
        await self._wire.publish(self.reply, data, headers)


Handler = Callable[[Request], Awaitable[None]]


class Endpoint:
    """A queue-group subscription dispatching each request to `handler` in its own task.

    Use as `async with Endpoint(...) as ep:`; leaving the block drains it.
    """

    def __init__(
        self,
        wire: Wire,
        subject: str,
        queue: str,
        handler: Handler,
        *,
        max_concurrency: int = 64,
        max_pending: int = 2048,
        drain_timeout: float = 30.0,
        on_refused: Callable[[Request], None] | None = None,
    ) -> None:
        self._wire = wire
        self._on_refused = on_refused
        self.subject = subject
        self.queue = queue
        self._handler = handler
        self._limit = asyncio.Semaphore(max_concurrency)
        self._capacity = max_concurrency + max_pending
        self._drain_timeout = drain_timeout
        self._inflight: set[Request] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sub: Subscription | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def __aenter__(self) -> Endpoint:
        self._sub = await self._wire.subscribe(self.subject, self._on_msg, queue=self.queue)
        self._ticker = asyncio.create_task(self._beat(), name=f"heartbeat {self.subject}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain()

    async def drain(self) -> None:
        """Stop intake, finish every admitted request (bounded by drain_timeout), release everything."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.drain()  # type: ignore[no-untyped-call]
            except Exception:  # connection closed or draining: queued messages are gone with it
                log.debug("subscription drain failed for %s", self.subject, exc_info=True)
            try:
                # nats-py's drain pings before its UNSUB is written: only a ping after it proves the
                # server stopped routing here, and a request routed until then must still be served.
                await self._wire.flush(self._drain_timeout)
            except Exception:  # the connection is gone: nothing more can arrive
                log.debug("flush after the drain of %s failed", self.subject, exc_info=True)
            self._wire.forget(sub)
        try:
            await asyncio.wait_for(self._idle.wait(), self._drain_timeout)
        except TimeoutError:
            log.warning(
                "drain of %s timed out with %d calls in flight; cancelling them",
                self.subject,
                len(self._tasks),
            )
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None

    def _on_msg(self, subject: str, reply: str, data: bytes, headers: dict[str, str] | None) -> None:
        req = Request(self._wire, subject, reply, data, headers)
        if len(self._inflight) >= self._capacity:
            task = asyncio.create_task(self._refuse(req))
            if self._on_refused is not None:
                try:
                    self._on_refused(req)
                except Exception:  # a bug in the hook must not turn a refusal into a lost reply
                    log.exception("the refusal hook of %s failed", self.subject)
        else:
            self._inflight.add(req)
            self._idle.clear()
            task = asyncio.create_task(self._run(req))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, req: Request) -> None:
        try:
            async with self._limit:
                await self._handler(req)
        except asyncio.CancelledError:
            pass  # a cancelled call sends no reply (MCP cancellation semantics)
        except BusError as exc:
            log.warning("could not reply on %s: %s", req.subject, exc)
        except Exception:
            log.exception("handler for %s failed outside its own error handling", req.subject)
        finally:
            self._inflight.discard(req)
            if not self._inflight:
                self._idle.set()

    async def _refuse(self, req: Request) -> None:
        sentence = f"the responder is overloaded ({self._capacity} requests admitted); retry later"
        body = b'{"code":%d,"message":"%s"}' % (OVERLOADED, sentence.encode())
        try:
            await req.respond_error(OVERLOADED, sentence, body)
        except BusError:
            log.debug("could not refuse %s", req.subject, exc_info=True)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            now = time.monotonic()
            for req in list(self._inflight):
                if req._beat_every and not req.replied and now - req._last_beat >= req._beat_every:
                    try:
                        await req.frame(b"", h.FRAME_HEARTBEAT)
                    except BusError:
                        log.debug("heartbeat to %s failed", req.reply, exc_info=True)

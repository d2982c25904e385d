"""Forwarding one tools/call over the bus: deadline, liveness, retries, cancellation.

Publishes on `<root>.<svc>.tools.call.<tool>` with the call's headers and reads frames from
the multiplexed inbox: notification frames go to the client as they come, heartbeat frames
prove the instance is alive, the final frame is the result or a JSON-RPC error. A call that
found no responder, or whose instance went silent, is retried on another instance when the
tool is read-only or idempotent; otherwise it fails with a sentence saying so. A cancelled
or timed-out call is announced on `<root>.<svc>.cancel` so the instance stops the work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final, Protocol

import msgspec
from msgspec import Raw

from bus import (
    CLAIM_CHECK,
    Bus,
    ClaimCheckFailed,
    DeadlineExceeded,
    NoResponders,
    NotConnected,
    PayloadTooLarge,
    PermissionDenied,
    ResponderLost,
    add_headers,
    encode_headers,
    take_result,
)
from schemas import bus as h
from schemas.bus import CancelRequest, cancel_encoder
from schemas.config import BridgeSettings
from schemas.errors import DEADLINE, INTERNAL_ERROR, OVERLOADED
from schemas.mcp import CallToolParams
from schemas.observe import BridgeRequest

from .breaker import Breakers
from .catalog import Entry
from .errors import (
    BusUnavailable,
    CallTimeout,
    Forbidden,
    OutcomeUnknown,
    RemoteError,
    RequestTooLarge,
    ServiceDown,
    reply_error,
)
from .seam import BridgeSeam

log = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder()
# Waits between retries when nobody received a call but discovery knows instances (restarts, reconnects).
_NO_RESPONDER_BACKOFF: Final = (0.05, 0.15, 0.3, 0.5, 1.0, 1.0)
_MAX_RESULT: Final = 64 * 1024 * 1024  # claim-checked results larger than this are refused, not truncated


class Liveness(Protocol):
    """What the caller asks of discovery (bridge/discovery.py)."""

    def has_instances(self, svc: str) -> bool: ...

    def saw(self, svc: str, instance: str | None) -> None: ...


class ShadowSink(Protocol):
    """Where a successful call is offered for shadowing (bridge/shadow.py); never blocks, never raises."""

    def offer(
        self, entry: Entry, body: bytes, headers: bytes, call_id: str, result: Raw, stable_ns: int
    ) -> None: ...


class Caller:
    """Sends calls for one bridge; `client` is the identity recorded with each call."""

    def __init__(
        self,
        bus: Bus,
        settings: BridgeSettings,
        client: str,
        liveness: Liveness,
        breakers: Breakers,
        seam: BridgeSeam | None = None,
        shadow: ShadowSink | None = None,
    ) -> None:
        self._liveness = liveness
        self._shadow = shadow
        self._bus = bus
        self._settings = settings
        self._client = client
        self._seq = 0
        self._prefix = bus.ident
        self._seam = seam or BridgeSeam()
        self.breakers = breakers
        self._fixed: dict[str, bytes] = {}  # protocol version -> the headers every call carries, encoded once

    def new_call_id(self) -> str:
        self._seq += 1
        return f"{self._prefix}-{self._seq}"

    async def call_tool(
        self,
        entry: Entry,
        params: CallToolParams,
        *,
        protocol_version: str,
        notify: Callable[[bytes], None],
        call_id: str | None = None,
        timeout: float | None = None,
        extra_headers: dict[str, str] | None = None,
        req: BridgeRequest | None = None,
    ) -> Raw:
        """The responder's CallToolResult (raw JSON), or a BridgeError. `req` (the seam's view of the
        client request) learns the service, the call id and the number of attempts."""
        s = self._settings
        call_id = call_id or self.new_call_id()
        if req is not None:
            req.service, req.call_id = entry.service, call_id
        seconds = timeout or s.call_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        svc = entry.service
        subject = self._bus.subjects.tool_call(svc, entry.tool.name)
        body = _encoder.encode(msgspec.structs.replace(params, name=entry.tool.name))
        fixed = self._fixed.get(protocol_version)
        if fixed is None:
            fixed = encode_headers(
                {
                    h.PROTOCOL_VERSION: protocol_version,
                    h.HEARTBEAT: str(int(s.heartbeat * 1000)),
                    h.CLIENT: self._client,
                }
            )
            if len(self._fixed) < 16:  # a handful of protocol versions exist; never grow without bound
                self._fixed[protocol_version] = fixed
        per_call = {h.CALL_ID: call_id, h.DEADLINE: str(int((time.time() + seconds) * 1000))}
        if extra_headers:
            per_call.update(extra_headers)
        headers = add_headers(fixed, per_call)
        breaker = self.breakers.get(svc)
        breaker.before_call()
        t0 = time.perf_counter_ns()
        try:
            result = await self._with_retries(
                entry, subject, body, headers, deadline, notify, call_id, seconds, req
            )
        except (ServiceDown, OutcomeUnknown, CallTimeout):
            breaker.failure()
            raise
        except RemoteError as exc:
            # An error answer is still an answer, except the responder's own "overloaded" or "deadline passed"
            # (which races with our deadline timer and must count the same way).
            if exc.code in (OVERLOADED, DEADLINE):
                breaker.failure()
            else:
                breaker.success()
            raise
        except BaseException:
            breaker.probing = False  # cancelled or unexpected: not evidence either way
            raise
        breaker.success()
        if self._shadow is not None:
            self._shadow.offer(entry, body, headers, call_id, result, time.perf_counter_ns() - t0)
        return result

    async def _with_retries(
        self,
        entry: Entry,
        subject: str,
        body: bytes,
        headers: bytes,
        deadline: float,
        notify: Callable[[bytes], None],
        call_id: str,
        seconds: float,
        req: BridgeRequest | None,
    ) -> Raw:
        s = self._settings
        svc = entry.service
        retry_safe = entry.retry_safe
        attempts = 0
        lost = 0
        while True:
            attempts += 1
            if req is not None:
                req.attempts += 1
            if attempts > 1:
                self._seam.retried(svc)
            try:
                return await self._attempt(svc, subject, body, headers, deadline, notify)
            except NoResponders:
                # Nobody received it, so a retry can never run it twice; but only wait when instances
                # are known to exist (a rolling restart), never when the service is simply down.
                if attempts > len(_NO_RESPONDER_BACKOFF) or not self._liveness.has_instances(svc):
                    raise ServiceDown(svc) from None
                await asyncio.sleep(_NO_RESPONDER_BACKOFF[attempts - 1])
            except ResponderLost:
                lost += 1
                if not retry_safe:
                    raise OutcomeUnknown(entry.exposed, s.liveness_window) from None
                if lost > s.max_retries:
                    raise ServiceDown(svc) from None
                log.warning(
                    "instance of %s went silent during %s (call %s); retrying", svc, entry.tool.name, call_id
                )
            except DeadlineExceeded:
                await self._cancel(svc, call_id)
                raise CallTimeout(entry.exposed, seconds) from None
            except asyncio.CancelledError:
                await self._cancel(svc, call_id)
                raise
            except PayloadTooLarge as exc:
                raise RequestTooLarge(exc.size, exc.limit) from None
            except ClaimCheckFailed as exc:
                raise RemoteError(exc.code, str(exc)) from None
            except NotConnected:
                raise BusUnavailable(self._bus.settings.url or "the configured URL") from None
            except PermissionDenied:  # issue #11: the server's refusal, reported at once (bus/mux.py)
                raise Forbidden(entry.exposed, self._bus.user) from None

    async def _attempt(
        self,
        svc: str,
        subject: str,
        body: bytes,
        headers: bytes,
        deadline: float,
        notify: Callable[[bytes], None],
    ) -> Raw:
        idle = self._settings.liveness_window
        with self._bus.open_call(subject) as call:
            await self._bus.publish(subject, body, headers, reply=call.reply)
            while True:
                frame = await call.next(idle, deadline)
                if frame.kind == h.FRAME_HEARTBEAT:
                    continue
                if frame.kind == h.FRAME_NOTIFICATION:
                    if frame.data[:1] == b"{":
                        notify(frame.data)
                    continue
                self._liveness.saw(
                    svc, frame.headers.get(h.INSTANCE)
                )  # any final reply proves the instance alive
                err = reply_error(frame.headers, frame.data)
                if err is not None:
                    raise err
                claim = frame.headers.get(CLAIM_CHECK)
                data = await take_result(self._bus, claim, _MAX_RESULT) if claim else frame.data
                if data[:1] != b"{":
                    raise RemoteError(
                        INTERNAL_ERROR, f"the responder for {subject} sent a result that is not a JSON object"
                    )
                return Raw(data)

    async def _cancel(self, svc: str, call_id: str) -> None:
        try:
            await self._bus.publish(
                self._bus.subjects.cancel(svc), cancel_encoder.encode(CancelRequest(callId=call_id))
            )
        except Exception:  # best effort: the deadline header stops the work anyway
            log.debug("cancel publish failed", exc_info=True)

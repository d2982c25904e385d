"""Shadow traffic: read-only tool calls of a shadowed service are sent again to its candidate, the
two results compared and the comparison recorded; the candidate's reply never reaches the client.

    async with Shadow(bus) as shadow:        # reads the rollout bucket now and every second
        caller = Caller(..., shadow=shadow)  # calls.py offers each successful call: offer() never blocks

Owns a task group: the poller and one task per shadow call, at most `max_in_flight` at once per
bridge (a call beyond that is skipped and counted, never queued). Only tools whose annotations
say `readOnlyHint: true` are ever shadowed. The copy gets its own call id (`<id>.shadow`) so that
its audit record is not taken for a duplicate of the original. Results go to
`<root>.rollout.shadow.<svc>`, kept by the rollout stream (`mcp-nats rollout report` reads it).
A bridge without the bucket shadows nothing. With credentials (auth on) the bridge reads the bucket
through the direct-get API the services account exports, and its comparisons reach the rollout
stream through a stream the clients account exports (bus/permissions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import difflib
import logging
import time
from typing import Any, Final

import msgspec
from msgspec import Raw

from bus import Bus, BusError, JetStream, KeyValue, add_headers
from schemas import bus as h
from schemas.rollout import SHADOW_KEY_PREFIX, ShadowResult, ShadowTarget, bucket, encoder, target_decoder

from .catalog import Entry

log = logging.getLogger(__name__)

POLL: Final = 1.0
IDLE_POLL: Final = 5.0
"""While the rollout bucket does not exist (no shadow was ever set), look for it less often."""
TIMEOUT: Final = 30.0
_DIFF_MAX: Final = 4096
_sorted: Final = msgspec.json.Encoder(order="sorted")


class Shadow:
    """See the module docstring."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.targets: dict[str, ShadowTarget] = {}
        self.skipped = 0
        self._in_flight = 0
        self._tg: asyncio.TaskGroup | None = None
        self._kv: KeyValue | None = None
        self._revision = 0
        self._poller: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Shadow:
        self._stack = contextlib.AsyncExitStack()
        self._tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        await self._poll_once()
        self._poller = self._tg.create_task(self._poll(), name="shadow poller")
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        if self._poller is not None:
            self._poller.cancel()
        try:
            return await self._stack.__aexit__(
                *exc
            )  # shadow calls in flight finish (each bounded by TIMEOUT)
        finally:
            self._tg = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL if self._kv is not None else IDLE_POLL)
            await self._poll_once()

    async def _poll_once(self) -> None:
        try:
            kv = self._kv
            if kv is None:
                js = JetStream(self._bus)
                # Without auth: does the bucket exist? (never created by a bridge.) With credentials the bridge's
                # account has no JetStream: only the direct-get API of the bucket is imported (bus/permissions.py).
                if not self._bus.settings.credentials:
                    await js.stream_state(self._bus.subjects.rollout_stream())
                kv = KeyValue(js, bucket(self._bus.subjects.root))
            while True:
                entries, more = await kv.changes(self._revision)
                self._kv = kv
                for e in entries:
                    self._revision = max(self._revision, e.revision)
                    if not e.key.startswith(SHADOW_KEY_PREFIX):
                        continue
                    svc = e.key[len(SHADOW_KEY_PREFIX) :]
                    if e.deleted or not e.value:
                        if self.targets.pop(svc, None) is not None:
                            log.info("shadowing of %s stopped", svc)
                        continue
                    try:
                        self.targets[svc] = target_decoder.decode(e.value)
                        log.info("shadowing %s's read-only calls to %s", svc, self.targets[svc].candidate)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        log.warning("ignoring a malformed shadow setting for %s", svc)
                if not more:
                    return
        except BusError as exc:
            log.debug("no rollout settings: %s", exc)

    def offer(
        self, entry: Entry, body: bytes, headers: bytes, call_id: str, result: Raw, stable_ns: int
    ) -> None:
        """Shadow this call if its service is shadowed and its tool is read-only. Never blocks, never raises."""
        target = self.targets.get(entry.service)
        if target is None or self._tg is None:
            return
        ann = entry.tool.annotations
        if ann is msgspec.UNSET or ann.readOnlyHint is not True:
            return
        if self._in_flight >= target.max_in_flight:
            self.skipped += 1
            return
        self._in_flight += 1
        self._tg.create_task(self._shadow(entry, target, body, headers, call_id, bytes(result), stable_ns))

    async def _shadow(
        self,
        entry: Entry,
        target: ShadowTarget,
        body: bytes,
        headers: bytes,
        call_id: str,
        stable: bytes,
        stable_ns: int,
    ) -> None:
        try:
            subject = self._bus.subjects.tool_call(target.candidate, entry.tool.name)
            shadow_headers = add_headers(
                headers,
                {h.CALL_ID: f"{call_id}.shadow", h.DEADLINE: str(int((time.time() + TIMEOUT) * 1000))},
            )
            t0 = time.perf_counter_ns()
            error = ""
            candidate = b""
            try:
                candidate = await self._request(subject, body, shadow_headers)
            except BusError as exc:
                error = str(exc)
            took = time.perf_counter_ns() - t0
            match, diff = (False, "") if error else _compare(stable, candidate)
            record = ShadowResult(
                service=entry.service,
                candidate=target.candidate,
                tool=entry.tool.name,
                callId=call_id,
                match=match,
                stableMs=stable_ns / 1e6,
                candidateMs=took / 1e6,
                time=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                diff=diff,
                error=error,
            )
            await self._bus.publish(self._bus.subjects.shadow_results(entry.service), encoder.encode(record))
        except Exception:
            log.exception("shadowing a call of %s failed", entry.service)
        finally:
            self._in_flight -= 1

    async def _request(self, subject: str, body: bytes, headers: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        with self._bus.open_call(subject) as call:
            await self._bus.publish(subject, body, headers, reply=call.reply)
            while True:
                frame = await call.next(TIMEOUT, deadline)
                if not frame.is_final:
                    continue
                code = frame.headers.get("Nats-Service-Error-Code")
                if code:
                    raise BusError(
                        f"the candidate answered error {code}: {frame.headers.get('Nats-Service-Error', '')}"
                    )
                return frame.data


def _compare(stable: bytes, candidate: bytes) -> tuple[bool, str]:
    """Equal as JSON (key order and spacing aside); else a unified diff of the pretty-printed results."""
    try:
        a, b = msgspec.json.decode(stable), msgspec.json.decode(candidate)
    except msgspec.DecodeError:
        return stable == candidate, ""
    if a == b:
        return True, ""
    fa = msgspec.json.format(_sorted.encode(a), indent=1).decode().splitlines()
    fb = msgspec.json.format(_sorted.encode(b), indent=1).decode().splitlines()
    diff = "\n".join(difflib.unified_diff(fa, fb, "stable", "candidate", lineterm="", n=1))
    return False, diff[:_DIFF_MAX]

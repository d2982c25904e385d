"""The audit log of one responder instance: one record per tool call, in JetStream, never silently lost.

Flow. The audit log is the first observer on the per-call seam (responders/seam.py): its
`call_ended` runs in the `finally` of every tool call, a deque append and nothing else, after
the reply has gone out. A background task (the pump) turns
entries into JSON records (schemas/audit.py) and publishes them with `publish_async`,
`Nats-Msg-Id` = call id, tracking every acknowledgement. A record that JetStream refuses, that
is not acknowledged within `ack_timeout`, or that is produced while the connection is down goes
to the on-disk spool (audit_spool.py); while the spool holds anything, newer records go behind
it, so the stream receives them in order. Every `retry_interval` the pump replays the spool
(a window at a time, moving the replay offset only after every ack of the window); once it is
empty, records are published directly again.

Owns the pump task and the spool file. `async with AuditLog(...)` ensures the audit stream,
takes over spool files left by dead instances of the same service, and starts the pump; leaving
the block flushes: queued records are published, outstanding acks awaited, the spool replayed
while JetStream answers (all bounded by `drain_timeout`), and whatever remains stays on disk
for the next instance. Spool depth is exported through `stats()`, the `AuditObserver`s (metrics),
and a warning log line every 30 s while records wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, Raw

from bus import MSG_ID, Bus, BusError, JetStream, PendingAck, StreamNotFound, audit_stream, wait_acks
from schemas.audit import AuditRecord, Outcome, record_encoder
from schemas.config import AuditSettings
from schemas.observe import AuditObserver, Refusal, ToolCall

from .audit_spool import Spool, encode_line

log = logging.getLogger(__name__)

_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_NO_TRACE: Final = "0" * 32
_REDACTED: Final = "[redacted]"
_WINDOW: Final = 8192  # acks outstanding at most; beyond, records wait in memory
_REPLAY_WINDOW: Final = 256
_REPLAY_BURST: Final = 16  # windows per pump turn, so new records are not starved while a backlog drains
_REAP_EVERY: Final = 0.1
_LINGER: Final = (
    0.002  # let a few records gather (and the replies that preceded them go out) before a publish round
)
_BATCH: Final = 256
_SCAN_EVERY: Final = 30.0  # look for spool files of dead instances this often
_REPORT_EVERY: Final = 30.0


@dataclass(frozen=True)
class AuditStats:
    """What the audit log of one instance holds and has done (for logs, metrics and $SRV STATS)."""

    queued: int
    inflight: int
    spool_records: int
    spool_bytes: int
    published: int
    spooled: int
    replayed: int
    dropped: int
    last_error: str


class _Entry:
    __slots__ = (
        "arguments",
        "call_id",
        "code",
        "duration_ms",
        "finished",
        "identity",
        "outcome",
        "tool",
        "traceparent",
        "verified",
    )

    def __init__(
        self,
        call_id: str,
        tool: str,
        identity: str,
        traceparent: str | None,
        arguments: bytes | Raw | None,
        duration_ms: float,
        outcome: Outcome,
        code: int | None,
        verified: bool = False,
    ) -> None:
        self.finished = time.time()
        self.verified = verified
        self.call_id = call_id
        self.tool = tool
        self.identity = identity
        self.traceparent = traceparent
        self.arguments = arguments
        self.duration_ms = duration_ms
        self.outcome: Outcome = outcome
        self.code = code


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header, or None when absent or malformed."""
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent.strip().lower())
    return m[1] if m and m[1] != _NO_TRACE else None


def redact(value: Any, names: frozenset[str]) -> Any:
    """`value` with the value of every key in `names` (case-insensitive, at any depth) replaced."""
    if isinstance(value, dict):
        return {k: _REDACTED if k.lower() in names else redact(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, names) for v in value]
    return value


class _Clock:
    """RFC 3339 UTC with milliseconds; the seconds part is formatted once per second (it is the costly bit)."""

    __slots__ = ("_sec", "_text")

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def iso(self, ts: float) -> str:
        sec = int(ts)
        if sec != self._sec:
            self._sec = sec
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._text}.{int((ts - sec) * 1000):03d}Z"


def spool_root(state_dir: str, configured: str) -> Path:
    """`[audit] spool_dir`, else `<state_dir>/audit-spool` (state_dir empty: $XDG_STATE_HOME/mcp-nats, as the CLI)."""
    import os

    if configured:
        return Path(configured).expanduser()
    if state_dir:
        return Path(state_dir).expanduser() / "audit-spool"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcp-nats" / "audit-spool"


class AuditLog:
    """The audit records of one service instance (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        settings: AuditSettings,
        *,
        service: str,
        instance: str,
        spool_dir: Path,
        drain_timeout: float = 10.0,
        observers: tuple[AuditObserver, ...] = (),
    ) -> None:
        self._bus = bus
        self._settings = settings
        self.service = service
        self.instance = instance
        self._drain_timeout = drain_timeout
        self._observers = observers
        self.stream = audit_stream(bus.subjects.root, settings)
        self._spool = Spool(spool_dir / bus.subjects.root / service, instance, settings.spool_max_bytes)
        self._redact = frozenset(n.lower() for n in settings.redact)
        self._queue: deque[_Entry] = deque()
        self._inflight: deque[tuple[PendingAck, str, str, bytes, float]] = deque()
        self._failed: list[bytes] = []
        self._wake = asyncio.Event()
        self._js: JetStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._spooling = False
        self._published = 0
        self._spooled = 0
        self._replayed = 0
        self._dropped = 0
        self._last_error = ""
        self._last_report = 0.0
        self._clock = _Clock()
        self._audit_subjects: dict[str, str] = {}
        self._busy = False

    # -- the call path --------------------------------------------------------------------------

    def call_started(self, call: ToolCall) -> Refusal | None:
        return None

    def call_ended(self, call: ToolCall) -> None:
        """Queue the record of one finished call (the per-call seam calls this). Never blocks and never raises.

        When other calls are still running (`call.busy`) the publisher may wait a moment to batch records;
        when idle it publishes at once, right behind the reply, instead of waking later in the middle
        of the next call."""
        if self._closed:
            self._dropped += 1
            log.error(
                "audit: a record for call %s arrived after the audit log closed; it is lost", call.call_id
            )
            return
        self._queue.append(
            _Entry(
                call.call_id,
                call.tool,
                call.identity,
                call.traceparent,
                call.arguments,
                call.duration_ns / 1e6,
                call.outcome,
                call.code,
                call.verified,
            )
        )
        self._busy = call.busy
        if not self._wake.is_set():
            self._wake.set()

    def stats(self) -> AuditStats:
        return AuditStats(
            queued=len(self._queue),
            inflight=len(self._inflight),
            spool_records=self._spool.records,
            spool_bytes=self._spool.held_bytes,
            published=self._published,
            spooled=self._spooled,
            replayed=self._replayed,
            dropped=self._dropped,
            last_error=self._last_error,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> AuditLog:
        self._js = JetStream(self._bus, timeout=self._settings.ack_timeout)
        await self._ensure_stream()
        await self._claim_orphans()
        self._task = asyncio.create_task(self._pump(), name=f"audit {self.service} {self.instance}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Flush (bounded by drain_timeout); what JetStream did not take stays in the spool file."""
        self._closing = True
        self._wake.set()
        task = self._task
        try:
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), self._drain_timeout)
                except TimeoutError:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                except Exception:  # a bug in the pump: its finally already spooled what it held
                    log.exception("audit: the publisher of %s failed", self.service)
        finally:
            self._closed = True
            if self._js is not None:
                await self._js.close()
            st = self.stats()
            if st.spool_records:
                log.warning(
                    "audit: %d records (%d bytes) stay in %s (last JetStream error: %s); the next %s instance replays them",
                    st.spool_records,
                    st.spool_bytes,
                    self._spool.path,
                    st.last_error or "none",
                    self.service,
                )
            self._spool.close()

    async def _ensure_stream(self) -> bool:
        assert self._js is not None
        try:
            await self._js.ensure_stream(self.stream)
        except BusError as exc:
            level = (
                logging.DEBUG if str(exc) == self._last_error else logging.WARNING
            )  # once per distinct cause
            self._last_error = str(exc)
            log.log(
                level,
                "audit: cannot ensure stream %s (%s); records are spooled until it can be",
                self.stream.name,
                exc,
            )
            return False
        return True

    async def _claim_orphans(self) -> None:
        try:
            taken = await asyncio.to_thread(self._spool.claim_orphans)
        except OSError as exc:
            log.error("audit: cannot take over the spool files in %s: %s", self._spool.dir, exc)
            return
        if taken:
            self._spooled += taken
            self._spooling = True
            self._report(force=True)

    # -- the pump -------------------------------------------------------------------------------

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        next_replay = 0.0
        next_scan = loop.time() + _SCAN_EVERY
        drain_end: float | None = None
        try:
            while True:
                now = loop.time()
                if self._closing and drain_end is None:
                    drain_end = now + max(0.5, self._drain_timeout - 0.5)
                    next_replay = now  # draining: try the spool now, whatever the retry schedule says
                can_publish = bool(self._queue) and (self._spooling or len(self._inflight) < _WINDOW)
                if not can_publish and not self._wake.is_set():
                    wait = next_scan - now
                    if self._inflight:
                        wait = min(wait, _REAP_EVERY)
                    if self._spooling:
                        wait = min(wait, next_replay - now)
                    if self._closing:
                        wait = min(wait, _REAP_EVERY)
                    if wait > 0:
                        timer = loop.call_later(wait, self._wake.set)  # cheaper than wait_for's task per turn
                        try:
                            await self._wake.wait()
                        finally:
                            timer.cancel()
                if self._busy and self._queue and len(self._queue) < _BATCH and not self._closing:
                    await asyncio.sleep(_LINGER)  # under load, batch records: fewer wake-ups and writes
                else:
                    await asyncio.sleep(0)  # every turn yields, whatever else it does or does not await
                self._wake.clear()
                now = loop.time()
                self._reap(now)
                await self._dispatch()
                if self._spooling and now >= next_replay:
                    if self._bus.connected:
                        state = await self._replay()
                        next_replay = loop.time() + (
                            0.0 if state != "failed" else self._settings.retry_interval
                        )
                    else:
                        next_replay = now + self._settings.retry_interval
                if now >= next_scan:
                    next_scan = now + _SCAN_EVERY
                    await self._claim_orphans()
                if self._spooling:
                    self._report()
                if (
                    drain_end is not None and not self._queue and not self._inflight
                ):  # draining, and nothing in flight
                    if not self._spooling or loop.time() >= drain_end or not self._bus.connected:
                        return
        finally:
            await self._spill()

    async def _dispatch(self) -> None:
        """Publish queued records (or spool them while the spool is in use); spool failed ones."""
        failed, self._failed = self._failed, []
        if failed:
            self._start_spooling()
        if not self._spooling and not self._bus.connected and self._queue:
            self._last_error = "not connected to NATS"
            self._start_spooling()
        if self._spooling:
            lines = failed + [self._line(e) for e in self._drain_queue()]
            if lines:
                await self._to_spool(lines)
            return
        assert self._js is not None
        now = asyncio.get_running_loop().time()
        while self._queue and len(self._inflight) < _WINDOW:
            subject, msg_id, body = self._build(self._queue[0])
            try:
                ack = await self._js.publish_async(subject, body, {MSG_ID: msg_id})
            except BusError as exc:
                self._last_error = str(exc)
                self._start_spooling()
                await self._to_spool([self._line(e) for e in self._drain_queue()])
                return
            self._queue.popleft()
            self._inflight.append((ack, subject, msg_id, body, now))

    def _drain_queue(self) -> list[_Entry]:
        out = list(self._queue)
        self._queue.clear()
        return out

    def _reap(self, now: float) -> None:
        """Retire answered acks from the oldest on; failed and overdue ones go to `_failed` (then the spool)."""
        q = self._inflight
        overdue = now - self._settings.ack_timeout
        while q:
            ack, subject, msg_id, body, sent = q[0]
            if ack.done():
                q.popleft()
                err = ack.error()
                if err is None:
                    self._published += 1
                    continue
                self._last_error = str(err)
            elif sent < overdue:
                q.popleft()
                ack.cancel()
                self._last_error = (
                    f"no acknowledgement from JetStream within {self._settings.ack_timeout:g} s"
                )
            else:
                return
            self._failed.append(encode_line(subject, msg_id, body))

    async def _replay(self) -> Literal["empty", "progress", "failed"]:
        """Publish spooled records in order, a window at a time; the offset moves only after every ack."""
        assert self._js is not None
        for _ in range(_REPLAY_BURST):
            try:
                entries, end = await asyncio.to_thread(self._spool.read, _REPLAY_WINDOW)
            except OSError as exc:
                log.error("audit: cannot read the spool %s: %s", self._spool.path, exc)
                return "failed"
            if not entries:
                self._stop_spooling()
                return "empty"
            acks: list[PendingAck] = []
            try:
                for e in entries:
                    acks.append(await self._js.publish_async(e.subject, e.record, {MSG_ID: e.msg_id}))
            except BusError as exc:
                for a in acks:
                    a.cancel()
                self._last_error = str(exc)
                return "failed"
            errors = await wait_acks(acks, self._settings.ack_timeout)
            bad = next((e for e in errors if e is not None), None)
            if bad is not None:
                self._last_error = str(bad)
                if isinstance(bad, StreamNotFound):
                    await (
                        self._ensure_stream()
                    )  # deleted under us, or never created: create it, retry next turn
                return "failed"
            try:
                await asyncio.to_thread(self._spool.commit, end, len(entries))
            except OSError as exc:
                log.error("audit: cannot update the spool %s: %s", self._spool.path, exc)
                return "failed"
            self._replayed += len(entries)
        return "progress"

    async def _to_spool(self, lines: list[bytes]) -> None:
        try:
            taken = await asyncio.to_thread(self._spool.append, lines)
        except OSError as exc:
            taken = 0
            log.error("audit: cannot write the spool %s: %s", self._spool.path, exc)
        self._spooled += taken
        if taken < len(lines):
            self._dropped += len(lines) - taken
            log.error(
                "audit: spool %s is full (%d bytes, [audit] spool_max_bytes) or unwritable: %d records dropped",
                self._spool.path,
                self._spool.held_bytes,
                len(lines) - taken,
            )
        self._report()

    async def _spill(self) -> None:
        """Last resort on exit or cancellation: everything not acknowledged goes to the spool."""
        self._reap(asyncio.get_running_loop().time())
        lines = (
            self._failed
            + [encode_line(s, i, b) for _a, s, i, b, _t in self._inflight]
            + [self._line(e) for e in self._drain_queue()]
        )
        for a, *_ in self._inflight:
            a.cancel()
        self._inflight.clear()
        self._failed = []
        if lines:
            try:
                taken = self._spool.append(lines)  # blocking on purpose: the loop is shutting this task down
            except OSError as exc:
                taken = 0
                log.error("audit: cannot write the spool %s: %s", self._spool.path, exc)
            self._spooled += taken
            self._dropped += len(lines) - taken

    def _start_spooling(self) -> None:
        if not self._spooling:
            self._spooling = True
            log.warning(
                "audit: JetStream did not take a record (%s); spooling to %s until it does",
                self._last_error or "unknown",
                self._spool.path,
            )

    def _stop_spooling(self) -> None:
        if self._spooling:
            self._spooling = False
            log.info("audit: spool replayed; %d records published from it so far", self._replayed)
            self._report(force=True)

    def _report(self, force: bool = False) -> None:
        for obs in self._observers:
            try:
                obs.audit_changed(self._spool.records, self._spooled)
            except Exception:
                log.debug("audit observer %s failed", type(obs).__name__, exc_info=True)
        now = time.monotonic()
        if self._spool.records and (force or now - self._last_report >= _REPORT_EVERY):
            self._last_report = now
            log.warning(
                "audit spool: %d records (%d bytes) waiting in %s; last JetStream error: %s",
                self._spool.records,
                self._spool.held_bytes,
                self._spool.path,
                self._last_error or "none",
            )

    # -- records --------------------------------------------------------------------------------

    def _build(self, e: _Entry) -> tuple[str, str, bytes]:
        """(subject, msg id, JSON record) for one entry."""
        args = e.arguments
        digest: str | Any = UNSET
        shown: Raw | Any = UNSET
        omitted: str | Any = UNSET
        if args is not None:
            digest = "sha256:" + hashlib.sha256(args).hexdigest()
            if self._settings.arguments == "redacted":
                try:
                    value = msgspec.json.decode(args) if args else {}
                except msgspec.DecodeError:
                    omitted = "not valid JSON"
                else:
                    encoded = msgspec.json.encode(redact(value, self._redact))
                    if len(encoded) > self._settings.max_argument_bytes:
                        omitted = f"larger than {self._settings.max_argument_bytes} bytes"
                    else:
                        shown = Raw(encoded)
        tid = trace_id(e.traceparent)
        rec = AuditRecord(
            callId=e.call_id,
            time=self._clock.iso(e.finished),
            service=self.service,
            tool=e.tool,
            instance=self.instance,
            identity=e.identity,
            verified=e.verified,
            outcome=e.outcome,
            durationMs=round(e.duration_ms, 3),
            errorCode=e.code if e.code is not None else UNSET,
            traceId=tid if tid is not None else UNSET,
            argsDigest=digest,
            arguments=shown,
            argumentsOmitted=omitted,
        )
        msg_id = (
            e.call_id
            if "\n" not in e.call_id and "\r" not in e.call_id
            else e.call_id.replace("\r", " ").replace("\n", " ")
        )
        subject = self._audit_subjects.get(e.tool)
        if subject is None:
            subject = self._bus.subjects.audit(self.service, e.tool)
            if len(self._audit_subjects) < 1024:  # refused calls name arbitrary tools: keep the cache bounded
                self._audit_subjects[e.tool] = subject
        return subject, msg_id, record_encoder.encode(rec)

    def _line(self, e: _Entry) -> bytes:
        return encode_line(*self._build(e))

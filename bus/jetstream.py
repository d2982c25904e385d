"""JetStream through the bus: streams created idempotently from settings, acknowledged publishes, batched reads.

Owns nothing long-lived except one nats-py JetStream context per `JetStream` (its async-ack
subscription lives under the connection's inbox prefix and goes with the connection).
Reads use direct-get batches (`$JS.API.DIRECT.GET.<stream>`, nats-server 2.11+): plain
request-reply over the bus's inbox, no consumer to create, leak or resume after a reconnect.

Errors (all BusError, so callers that only know the bus can still catch them):

    BusError
     └── JetStreamError         JetStream refused a request or did not answer (`code` -31009)
          ├── StreamNotFound    no stream has that name, or none captures the subject
          └── RevisionConflict  a compare-and-set found another revision (KV updates, bus/kv.py)
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
import nats.errors
import nats.js.api as api
import nats.js.errors

from schemas.config import AuditSettings, EventsSettings
from schemas.errors import JETSTREAM

from .connection import Bus
from .errors import BusError, NoResponders, translate
from .mux import Call, Inbox
from .subjects import Subjects

log = logging.getLogger(__name__)

MSG_ID: Final = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ: Final = "Nats-Expected-Last-Subject-Sequence"
_STATUS: Final = "Status"
_STREAM_NOT_FOUND: Final = 10059
_STREAM_NAME_IN_USE: Final = 10058
_WRONG_LAST_SEQUENCE: Final = (10071, 10164)
_BATCH_MAX: Final = 1000


class JetStreamError(BusError):
    """Raised when JetStream refuses a request (limits, permissions, bad config) or does not answer in time."""

    code = JETSTREAM

    def __init__(self, detail: str) -> None:
        super().__init__(f"JetStream: {detail}")
        self.detail = detail


class StreamNotFound(JetStreamError):
    """Raised when the named stream does not exist, or no stream captures a published subject."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no stream {what}")
        self.what = what


class RevisionConflict(JetStreamError):
    """Raised when a compare-and-set write finds a revision other than the one it expected."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"{key!r} changed since it was read{': ' + detail if detail else ''}")
        self.key = key


def js_error(exc: BaseException, *, subject: str = "", stream: str = "") -> BusError:
    """Map a nats-py (JetStream) exception to ours; callers `raise js_error(e) from e`."""
    if isinstance(exc, BusError):
        return exc
    if isinstance(exc, nats.js.errors.KeyWrongLastSequenceError):
        return RevisionConflict(subject, exc.description or "")
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return StreamNotFound(f"captures {subject!r}" if subject else "answered")
    if isinstance(exc, nats.js.errors.APIError) and exc.err_code is not None:
        if exc.err_code == _STREAM_NOT_FOUND:
            return StreamNotFound(f"named {stream!r}" if stream else "with that name")
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            return RevisionConflict(subject, exc.description or "")
        return JetStreamError(f"{exc.description or 'request refused'} (error {exc.err_code})")
    if isinstance(exc, nats.js.errors.NotFoundError):
        return StreamNotFound(f"named {stream!r}" if stream else "with that name")
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return JetStreamError("no answer in time (is JetStream enabled on the server?)")
    return translate(exc, subject=subject)


# -- stream definitions -------------------------------------------------------------------------


def stream_name(kind: Literal["audit", "events"], root: str, configured: str = "") -> str:
    """MCP_AUDIT / MCP_EVENTS for the root `mcp`, MCP_AUDIT_<root> / MCP_EVENTS_<root> otherwise."""
    if configured:
        return configured
    base = f"MCP_{kind.upper()}"
    return base if root == "mcp" else f"{base}_{root}"


@dataclass(frozen=True)
class StreamSpec:
    """The settings we own on a stream; `ensure_stream` makes the server's match them."""

    name: str
    subjects: tuple[str, ...]
    description: str
    max_age: float
    max_bytes: int
    replicas: int = 1
    discard: Literal["old", "new"] = "old"
    duplicate_window: float = 120.0
    deny_delete: bool = False
    deny_purge: bool = False
    allow_direct: bool = True

    def config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            num_replicas=self.replicas,
            discard=api.DiscardPolicy.NEW if self.discard == "new" else api.DiscardPolicy.OLD,
            duplicate_window=self.duplicate_window,
            deny_delete=self.deny_delete,
            deny_purge=self.deny_purge,
            allow_direct=self.allow_direct,
        )

    def differences(self, cfg: api.StreamConfig) -> list[str]:
        """Names of the settings in which the server's config differs from this spec."""
        have: dict[str, Any] = {
            "subjects": sorted(cfg.subjects or []),
            "description": cfg.description or "",
            "max_age": round(cfg.max_age or 0.0, 3),
            "max_bytes": cfg.max_bytes if cfg.max_bytes is not None else -1,
            "replicas": cfg.num_replicas or 1,
            "discard": "new" if cfg.discard == api.DiscardPolicy.NEW else "old",
            "duplicate_window": round(cfg.duplicate_window or 0.0, 3),
            "deny_delete": bool(cfg.deny_delete),
            "deny_purge": bool(cfg.deny_purge),
            "allow_direct": bool(cfg.allow_direct),
        }
        want: dict[str, Any] = {
            "subjects": sorted(self.subjects),
            "description": self.description,
            "max_age": round(self.max_age, 3),
            "max_bytes": self.max_bytes,
            "replicas": self.replicas,
            "discard": self.discard,
            "duplicate_window": round(self.duplicate_window, 3),
            "deny_delete": self.deny_delete,
            "deny_purge": self.deny_purge,
            "allow_direct": self.allow_direct,
        }
        return [k for k in want if want[k] != have[k]]


def audit_stream(root: str, settings: AuditSettings) -> StreamSpec:
    """The audit log: `<root>.audit.>`, never deleted from or purged, retention from settings."""
    return StreamSpec(
        name=stream_name("audit", root, settings.stream),
        subjects=(Subjects(root).audit_all(),),
        description=f"mcp-nats audit log: one JSON record per tool call under subject root {root!r}",
        max_age=settings.max_age,
        max_bytes=settings.max_bytes,
        replicas=settings.replicas,
        discard=settings.discard,
        duplicate_window=settings.duplicate_window,
        deny_delete=True,
        deny_purge=True,
    )


def events_stream(root: str, settings: EventsSettings) -> StreamSpec:
    """Service events: `<root>.events.>` (lifecycle, resource updates, list changes), oldest dropped first."""
    return StreamSpec(
        name=stream_name("events", root, settings.stream),
        subjects=(Subjects(root).events_all(),),
        description=f"mcp-nats service events under subject root {root!r}",
        max_age=settings.max_age,
        max_bytes=settings.max_bytes,
        replicas=settings.replicas,
    )


# -- messages read back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMsg:
    """A message as the stream holds it."""

    stream: str
    subject: str
    seq: int
    time: str
    """RFC 3339, as the server stamped it (nanoseconds)."""
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    messages: list[StoredMsg]
    pending: int
    """Matching messages after the last one returned (0: caught up)."""


@dataclass(frozen=True)
class StreamState:
    messages: int
    bytes: int
    first_seq: int
    last_seq: int


class _Ack(msgspec.Struct):
    """A JetStream publish acknowledgement, or its error."""

    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_ack_decoder: Final = msgspec.json.Decoder(_Ack)


class PendingAck:
    """The acknowledgement of one `publish_async`: poll `done()`, then `error()` (None when stored).

    Lighter than a future on purpose (one per audit record): the ack is delivered by the bus's
    inbox straight to `_resolve`; `wait_acks` is the way to await several.
    """

    __slots__ = ("_error", "_group", "_sink", "_state")

    def __init__(self) -> None:
        self._state = 0  # 0 waiting, 1 stored, 2 failed
        self._error: BusError | None = None
        self._group: _Group | None = None
        self._sink: _AckSink | None = None

    def done(self) -> bool:
        return self._state != 0

    def error(self) -> BusError | None:
        """None when JetStream stored the message (or already had it: same Nats-Msg-Id); else why not."""
        if self._state == 0:
            return JetStreamError("no acknowledgement yet")
        return self._error

    def cancel(self) -> None:
        """Stop waiting: the ack, should it still come, is ignored and this counts as failed."""
        if self._state == 0:
            self._fail(JetStreamError("no acknowledgement in time"))

    def _fail(self, err: BusError) -> None:
        self._error = err
        self._finish(2)

    def _finish(self, state: int) -> None:
        self._state = state
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()
        if self._group is not None:
            self._group.one_done()

    def _resolve(self, data: bytes, headers: dict[str, str] | None, subject: str) -> None:
        if self._state != 0:
            return
        if not data and headers and headers.get(_STATUS) == "503":
            self._fail(
                StreamNotFound(
                    f"captures {subject!r} (or it has no leader right now, e.g. during an election)"
                )
            )
            return
        try:
            ack = _ack_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._fail(JetStreamError(f"unreadable acknowledgement: {data[:100]!r}"))
            return
        if ack.error is None:
            self._finish(1)
            return
        code = ack.error.get("err_code")
        desc = str(ack.error.get("description") or "request refused")
        if code == _STREAM_NOT_FOUND:
            self._fail(StreamNotFound("with that name"))
        elif code in _WRONG_LAST_SEQUENCE:
            self._fail(RevisionConflict(desc))
        else:
            self._fail(JetStreamError(f"{desc} (error {code})"))


class _AckSink(Call):
    """Stands in the bus inbox's call table for one outstanding ack, so the ack arrives over the
    inbox's single subscription (a second subscription under the same prefix would get every ack twice)."""

    __slots__ = ("_ack",)

    def __init__(self, mux: Inbox, token: str, subject: str, ack: PendingAck) -> None:
        # Only what the inbox and Call.close use: no frame buffer or waiter for an ack.
        self._mux = mux
        self.token = token
        self.subject = subject
        self.reply = f"{mux.prefix}.{token}"
        self._ack = ack

    def _deliver(self, data: bytes, headers: dict[str, str] | None) -> None:
        self._ack._resolve(data, headers, self.subject)


class _Group:
    __slots__ = ("event", "remaining")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.event = asyncio.Event()
        if remaining <= 0:
            self.event.set()

    def one_done(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.event.set()


async def wait_acks(acks: list[PendingAck], timeout: float) -> list[BusError | None]:
    """Wait up to `timeout` for every ack; each missing one is abandoned and reported as an error."""
    waiting = [a for a in acks if not a.done()]
    group = _Group(len(waiting))
    for a in waiting:
        a._group = group
    try:
        await asyncio.wait_for(group.event.wait(), timeout)
    except TimeoutError:
        for a in waiting:
            a.cancel()
    finally:
        for a in waiting:
            a._group = None
    return [a.error() for a in acks]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class JetStream:
    """JetStream requests over one connected Bus. Every call is bounded by `timeout` seconds."""

    def __init__(self, bus: Bus, *, timeout: float = 5.0) -> None:
        self.bus = bus
        self.timeout = timeout
        self._js = bus.nc.jetstream(timeout=timeout)
        # Acks come back over the bus inbox (tokens with a '-', which the inbox's own never contain):
        # nats-py's publish_async loses the future when JetStream answers 503 (e.g. "maximum bytes
        # exceeded" raises inside its callback), so its callers could only time out.
        self._ack_prefix = f"ack{id(self):x}-"
        self._ack_next = 0

    def cluster_replicas(self) -> int:
        """Replicas that follow the cluster: 3 when the connected server is part of a cluster, else 1."""
        info = getattr(self.bus.nc, "_server_info", {}) or {}
        return 3 if info.get("cluster") else 1

    async def ensure_stream(self, spec: StreamSpec) -> Literal["created", "updated", "unchanged"]:
        """Create the stream, or bring its settings in line with `spec`. Safe to race with other processes.
        `replicas=0` in the spec means: follow the cluster (see cluster_replicas)."""
        if spec.replicas == 0:
            spec = dataclasses.replace(spec, replicas=self.cluster_replicas())
        for _ in range(3):
            try:
                info = await self._js.stream_info(spec.name)
            except Exception as exc:
                err = js_error(exc, stream=spec.name)
                if not isinstance(err, StreamNotFound):
                    raise err from exc
            else:
                diff = spec.differences(info.config)
                if not diff:
                    return "unchanged"
                try:
                    await self._js.update_stream(spec.config())
                except Exception as exc:
                    raise JetStreamError(
                        f"cannot change {', '.join(diff)} of stream {spec.name}: {js_error(exc, stream=spec.name)}"
                    ) from exc
                log.info("stream %s updated (%s)", spec.name, ", ".join(diff))
                return "updated"
            try:
                await self._js.add_stream(spec.config())
            except nats.js.errors.APIError as exc:
                if exc.err_code == _STREAM_NAME_IN_USE:
                    continue  # another process created it first, with other settings: compare again
                raise js_error(exc, stream=spec.name) from exc
            except Exception as exc:
                raise js_error(exc, stream=spec.name) from exc
            log.info("stream %s created on %s", spec.name, ", ".join(spec.subjects))
            return "created"
        raise JetStreamError(f"stream {spec.name} keeps changing under us; giving up")

    async def stream_state(self, name: str) -> StreamState:
        try:
            info = await self._js.stream_info(name)
        except Exception as exc:
            raise js_error(exc, stream=name) from exc
        s = info.state
        return StreamState(messages=s.messages, bytes=s.bytes, first_seq=s.first_seq, last_seq=s.last_seq)

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> int:
        """Publish and wait for the ack; returns the stream sequence. Raises JetStreamError / StreamNotFound."""
        try:
            ack = await self._js.publish(subject, data, timeout=self.timeout, headers=headers)
        except Exception as exc:
            raise js_error(exc, subject=subject) from exc
        return int(ack.seq)

    async def publish_async(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> PendingAck:
        """Publish without waiting; the returned PendingAck completes when JetStream answers (it may never:
        cancel it, or use wait_acks, after a timeout). Raises NotConnected / PayloadTooLarge when the publish
        itself fails."""
        inbox = self.bus.inbox
        self._ack_next += 1
        token = f"{self._ack_prefix}{self._ack_next}"
        ack = PendingAck()
        sink = _AckSink(inbox, token, subject, ack)
        ack._sink = sink
        inbox._calls[token] = sink
        try:
            await self.bus.publish(subject, data, headers, reply=sink.reply)
        except BaseException:
            ack.cancel()
            raise
        return ack

    async def close(self) -> None:
        """Stop receiving acknowledgements: outstanding PendingAcks count as failed."""
        calls = self.bus.inbox._calls
        for token in [t for t in calls if t.startswith(self._ack_prefix)]:
            sink = calls.get(token)
            if isinstance(sink, _AckSink):
                sink._ack.cancel()

    async def get_batch(
        self,
        stream: str,
        subject: str,
        *,
        seq: int | None = None,
        start_time: dt.datetime | None = None,
        batch: int = 256,
    ) -> Batch:
        """Up to `batch` messages on `subject` (wildcards allowed) from `seq` or `start_time` on, in order."""
        body: dict[str, Any] = {"next_by_subj": subject, "batch": max(1, min(batch, _BATCH_MAX))}
        if start_time is not None:
            body["start_time"] = _iso(start_time)
        else:
            body["seq"] = max(1, seq or 1)
        api_subject = f"$JS.API.DIRECT.GET.{stream}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        messages: list[StoredMsg] = []
        try:
            with self.bus.open_call(api_subject) as call:
                await self.bus.publish(api_subject, msgspec.json.encode(body), reply=call.reply)
                while True:
                    frame = await call.next(self.timeout, deadline)
                    hdrs = frame.headers
                    status = hdrs.get(_STATUS)
                    if status == "204":  # end of batch
                        return Batch(messages, int(hdrs.get("Nats-Num-Pending") or 0))
                    if status == "404":  # nothing (more) at or after the start
                        return Batch(messages, 0)
                    if status:
                        raise JetStreamError(
                            f"direct get on {stream} answered status {status} {hdrs.get('Description', '')}".strip()
                        )
                    messages.append(
                        StoredMsg(
                            stream=stream,
                            subject=hdrs.get("Nats-Subject", ""),
                            seq=int(hdrs.get("Nats-Sequence") or 0),
                            time=hdrs.get("Nats-Time-Stamp", ""),
                            data=frame.data,
                            headers=hdrs,
                        )
                    )
        except NoResponders as exc:
            raise StreamNotFound(f"named {stream!r} (or it does not allow direct get)") from exc

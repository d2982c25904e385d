"""The ADR-32 service API ($SRV.PING/INFO/STATS), so `nats micro ls|info|stats` see every instance.

Owns the nine plain (non-queue) subscriptions of one instance. Endpoints and their counters
are supplied by the caller; nats-py's own `nats.micro` is not used because it runs handlers
one at a time, cancels in-flight work on stop and puts `repr(exc)` on the wire.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec
from nats.aio.msg import Msg

from schemas.bus import EndpointInfo, EndpointStats, InfoResponse, PingResponse, StatsResponse

from .connection import Bus
from .subjects import SRV_VERBS, srv

log = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder()


@dataclass
class EndpointCounters:
    """Per-endpoint counters, as ADR-32 STATS reports them (times in ns)."""

    name: str
    subject: str
    queue_group: str
    metadata: dict[str, str] | None = None
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time: int = 0

    def record(self, elapsed_ns: int, error: str | None = None) -> None:
        self.num_requests += 1
        self.processing_time += elapsed_ns
        if error is not None:
            self.num_errors += 1
            self.last_error = error


@dataclass
class MicroService:
    """One instance's identity and endpoints for the $SRV API."""

    name: str
    id: str
    version: str
    description: str
    metadata: dict[str, str]
    endpoints: Callable[[], list[EndpointCounters]]
    started: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"))

    def ping(self) -> PingResponse:
        return PingResponse(name=self.name, id=self.id, version=self.version, metadata=self.metadata)

    def info(self) -> InfoResponse:
        return InfoResponse(
            name=self.name,
            id=self.id,
            version=self.version,
            description=self.description,
            metadata=self.metadata,
            endpoints=[
                EndpointInfo(name=e.name, subject=e.subject, queue_group=e.queue_group, metadata=e.metadata)
                for e in self.endpoints()
            ],
        )

    def stats(self) -> StatsResponse:
        return StatsResponse(
            name=self.name,
            id=self.id,
            version=self.version,
            metadata=self.metadata,
            started=self.started,
            endpoints=[
                EndpointStats(
                    name=e.name,
                    subject=e.subject,
                    queue_group=e.queue_group,
                    num_requests=e.num_requests,
                    num_errors=e.num_errors,
                    last_error=e.last_error,
                    processing_time=e.processing_time,
                    average_processing_time=e.processing_time // e.num_requests if e.num_requests else 0,
                )
                for e in self.endpoints()
            ],
        )


class MicroEndpoint:
    """Answers $SRV.<VERB>, $SRV.<VERB>.<name> and $SRV.<VERB>.<name>.<id>; use with `async with`."""

    def __init__(self, bus: Bus, service: MicroService) -> None:
        self._bus = bus
        self._svc = service
        self._subs: list[object] = []

    async def __aenter__(self) -> MicroEndpoint:
        for verb in SRV_VERBS:
            for subject in (srv(verb), srv(verb, self._svc.name), srv(verb, self._svc.name, self._svc.id)):
                self._subs.append(await self._bus.subscribe(subject, self._on_msg))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception:  # connection already closed
                log.debug("$SRV unsubscribe failed", exc_info=True)
        self._subs.clear()

    async def _on_msg(self, msg: Msg) -> None:
        if not msg.reply:
            return
        verb = msg.subject.split(".", 2)[1]
        body = {"PING": self._svc.ping, "INFO": self._svc.info, "STATS": self._svc.stats}[verb]()
        try:
            await self._bus.publish(msg.reply, _encoder.encode(body))
        except Exception:
            log.debug("$SRV reply failed", exc_info=True)

"""What a service instance announces on `<root>.events.<svc>.<kind>` (schemas/events.py);
bridges forward it to their clients. Publishing is best effort for the caller: a BusError is
raised, never swallowed here, so the caller decides whether a lost event matters."""

from __future__ import annotations

from bus import Bus
from schemas.events import (
    Event,
    Lifecycle,
    ListChanged,
    ListKind,
    ResourceUpdated,
    event_encoder,
    subject_kind,
)


class Events:
    """The events of one service instance."""

    def __init__(self, bus: Bus, service: str, instance: str) -> None:
        self._bus = bus
        self.service = service
        self.instance = instance

    async def resource_updated(self, uri: str) -> None:
        await self.publish(ResourceUpdated(uri=uri, service=self.service, instance=self.instance))

    async def list_changed(self, kind: ListKind) -> None:
        await self.publish(ListChanged(kind=kind, service=self.service, instance=self.instance))

    async def lifecycle(self, event: str) -> None:
        assert event in ("started", "stopping")
        await self.publish(Lifecycle(event=event, service=self.service, instance=self.instance))  # type: ignore[arg-type]

    async def publish(self, event: Event) -> None:
        await self._bus.publish(
            self._bus.subjects.events(self.service, subject_kind(event)), event_encoder.encode(event)
        )

"""What services announce on `<root>.events.<svc>.<kind>` and bridges forward: one tagged union.

Every event names the service and the instance that sent it. The tag (`type`) is also the
subject's last token, so a subscriber can filter by subject and still decode with one decoder.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from msgspec import Struct

ListKind = Literal["tools", "resources", "prompts"]


class Lifecycle(Struct, kw_only=True, frozen=True, tag="lifecycle", tag_field="type"):
    """An instance started serving, or began to drain."""

    event: Literal["started", "stopping"]
    service: str
    instance: str


class ResourceUpdated(Struct, kw_only=True, frozen=True, tag="resource_updated", tag_field="type"):
    """A resource changed; bridges tell the clients subscribed to its URI."""

    uri: str
    service: str
    instance: str


class ListChanged(Struct, kw_only=True, frozen=True, tag="list_changed", tag_field="type"):
    """A service's list of tools, resources or prompts changed."""

    kind: ListKind
    service: str
    instance: str


Event = Lifecycle | ResourceUpdated | ListChanged

event_encoder: Final = msgspec.json.Encoder()
event_decoder: Final = msgspec.json.Decoder(Event)


def subject_kind(event: Event) -> str:
    """The last token of the subject an event travels on (its tag)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag

"""What the client hears without asking: list changes and resource updates, for both eras.

Owns the client's subscriptions: legacy `resources/subscribe` URIs, and the open
`subscriptions/listen` streams of 2026-07-28 clients with what each agreed to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
from msgspec import Raw

from schemas.jsonrpc import RequestId, encode_notification
from schemas.mcp import META_SUBSCRIPTION_ID

LIST_FLAGS: Final = {
    "tools": "toolsListChanged",
    "resources": "resourcesListChanged",
    "prompts": "promptsListChanged",
}
_encoder: Final = msgspec.json.Encoder()


class Notices:
    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self.initialized = False  # legacy: notifications/initialized arrived
        self.subscriptions: set[str] = set()  # legacy: resources/subscribe
        self._listens: dict[object, tuple[RequestId, dict[str, Any]]] = {}

    def agree(self, requested: dict[str, Any]) -> dict[str, Any]:
        """What of a `subscriptions/listen` request we honour."""
        agreed: dict[str, Any] = {k: True for k in LIST_FLAGS.values() if requested.get(k) is True}
        uris = requested.get("resourceSubscriptions")
        if isinstance(uris, list) and all(isinstance(u, str) for u in uris):
            agreed["resourceSubscriptions"] = uris
        return agreed

    def listen(self, sub_id: RequestId, agreed: dict[str, Any]) -> object:
        key = (type(sub_id), sub_id)
        self._listens[key] = (sub_id, agreed)
        return key

    def unlisten(self, key: object) -> None:
        self._listens.pop(key, None)

    def list_changed(self, kind: str) -> None:
        """A merged list (tools, resources or prompts) changed: tell the client as its era expects."""
        flag = LIST_FLAGS.get(kind)
        if flag is None:
            return
        method = f"notifications/{kind}/list_changed"
        if self.initialized:
            self._write(encode_notification(method))
        for sub_id, agreed in list(self._listens.values()):
            if agreed.get(flag):
                self._write(
                    encode_notification(
                        method, Raw(_encoder.encode({"_meta": {META_SUBSCRIPTION_ID: sub_id}}))
                    )
                )

    def resource_updated(self, uri: str) -> None:
        """A service says a resource changed: tell the client if it subscribed to that URI."""
        if self.initialized and uri in self.subscriptions:
            self._write(
                encode_notification("notifications/resources/updated", Raw(_encoder.encode({"uri": uri})))
            )
        for sub_id, agreed in list(self._listens.values()):
            if uri in agreed.get("resourceSubscriptions", ()):
                params = {"uri": uri, "_meta": {META_SUBSCRIPTION_ID: sub_id}}
                self._write(
                    encode_notification("notifications/resources/updated", Raw(_encoder.encode(params)))
                )

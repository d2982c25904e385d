"""The only package that imports nats: connect, subjects, inbox mux, serve, $SRV, errors, embedded server.

The security tooling (auth store, callout, claims push) and backups are imported on first use, so a
bridge or a responder does not load JWT minting, certificates and snapshots it never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .authstore import AuthDir as AuthDir
    from .authstore import AuthDirError as AuthDirError
    from .authstore import Compiled as Compiled
    from .callout import Authorizer as Authorizer
    from .callout import Decision as Decision
    from .claims import ClaimsRefused as ClaimsRefused
    from .claims import push_accounts as push_accounts
    from .snapshot import Snapshot as Snapshot
    from .snapshot import delete_stream as delete_stream
    from .snapshot import restore_stream as restore_stream
    from .snapshot import snapshot_stream as snapshot_stream


from .connection import Bus as Bus
from .connection import ServerInfo as ServerInfo
from .connection import connect as connect
from .connection import probe as probe
from .embedded import EmbeddedServer as EmbeddedServer
from .embedded import EmbeddedServerError as EmbeddedServerError
from .embedded import find_binary as find_binary
from .errors import BusError as BusError
from .errors import CredentialsError as CredentialsError
from .errors import DeadlineExceeded as DeadlineExceeded
from .errors import NoResponders as NoResponders
from .errors import NotConnected as NotConnected
from .errors import PayloadTooLarge as PayloadTooLarge
from .errors import PermissionDenied as PermissionDenied
from .errors import ResponderLost as ResponderLost
from .jetstream import MSG_ID as MSG_ID
from .jetstream import Batch as Batch
from .jetstream import JetStream as JetStream
from .jetstream import JetStreamError as JetStreamError
from .jetstream import PendingAck as PendingAck
from .jetstream import RevisionConflict as RevisionConflict
from .jetstream import StoredMsg as StoredMsg
from .jetstream import StreamNotFound as StreamNotFound
from .jetstream import StreamSpec as StreamSpec
from .jetstream import StreamState as StreamState
from .jetstream import audit_stream as audit_stream
from .jetstream import events_stream as events_stream
from .jetstream import stream_name as stream_name
from .jetstream import wait_acks as wait_acks
from .kv import Entry as KVEntry
from .kv import KeyValue as KeyValue
from .micro import EndpointCounters as EndpointCounters
from .micro import MicroEndpoint as MicroEndpoint
from .micro import MicroService as MicroService
from .mux import Call as Call
from .mux import Frame as Frame
from .objects import CLAIM_CHECK as CLAIM_CHECK
from .objects import ClaimCheckFailed as ClaimCheckFailed
from .objects import put_result as put_result
from .objects import take_result as take_result
from .permissions import Permissions as Permissions
from .serve import Endpoint as Endpoint
from .serve import Request as Request
from .subjects import Subjects as Subjects
from .subjects import is_token as is_token
from .subjects import tool_token as tool_token
from .wire import Wire as Wire
from .wire import add_headers as add_headers
from .wire import encode_headers as encode_headers

_LAZY = {
    "AuthDir": ".authstore",
    "AuthDirError": ".authstore",
    "Compiled": ".authstore",
    "Authorizer": ".callout",
    "Decision": ".callout",
    "ClaimsRefused": ".claims",
    "push_accounts": ".claims",
    "Snapshot": ".snapshot",
    "delete_stream": ".snapshot",
    "restore_stream": ".snapshot",
    "snapshot_stream": ".snapshot",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthDir",
    "AuthDirError",
    "ClaimsRefused",
    "Compiled",
    "CredentialsError",
    "Permissions",
    "Authorizer",
    "Decision",
    "push_accounts",
    "Snapshot",
    "delete_stream",
    "restore_stream",
    "snapshot_stream",
    "MSG_ID",
    "Batch",
    "JetStream",
    "JetStreamError",
    "PendingAck",
    "RevisionConflict",
    "StoredMsg",
    "StreamNotFound",
    "StreamSpec",
    "StreamState",
    "audit_stream",
    "events_stream",
    "stream_name",
    "wait_acks",
    "Wire",
    "add_headers",
    "encode_headers",
    "KVEntry",
    "KeyValue",
    "CLAIM_CHECK",
    "ClaimCheckFailed",
    "put_result",
    "take_result",
    "Bus",
    "BusError",
    "Call",
    "DeadlineExceeded",
    "EmbeddedServer",
    "EmbeddedServerError",
    "Endpoint",
    "EndpointCounters",
    "Frame",
    "MicroEndpoint",
    "MicroService",
    "NoResponders",
    "NotConnected",
    "PayloadTooLarge",
    "PermissionDenied",
    "Request",
    "ResponderLost",
    "ServerInfo",
    "Subjects",
    "connect",
    "find_binary",
    "is_token",
    "probe",
    "tool_token",
]

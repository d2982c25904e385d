"""Errors the bridge answers a client with, each a sentence a person can act on.

    BridgeError                 base; `code` is the JSON-RPC code, `data` optional
     ├── ServiceDown            no responder is running for the service
     ├── CallTimeout            the call's deadline passed
     ├── OutcomeUnknown         the instance died mid-call and the tool is not safe to retry
     ├── CircuitOpen            the service kept failing; calls fail fast until a probe succeeds
     ├── BusUnavailable         NATS cannot be reached
     ├── RequestTooLarge        the arguments exceed the bus's max_payload
     ├── RemoteError            the responder answered with a JSON-RPC error (passed through)
     ├── Forbidden              the NATS server refused the call for this identity (its permissions)
     └── InvalidParams / MethodNotFound / UnsupportedVersion   the client's request is wrong

`to_error` is the one place that turns any exception into (code, message, data); unknown
exceptions become INTERNAL_ERROR with a generic sentence and are logged with a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from msgspec import UNSET

from bus import errors as be
from schemas import errors as codes
from schemas.bus import SERVICE_ERROR, SERVICE_ERROR_CODE
from schemas.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, ErrorObject
from schemas.mcp import HANDSHAKE_VERSIONS, MODERN_VERSIONS, UNSUPPORTED_PROTOCOL_VERSION

log = logging.getLogger(__name__)
_error_decoder = msgspec.json.Decoder(ErrorObject)


class BridgeError(Exception):
    """Base: `code` is the JSON-RPC code, `data` the optional error data."""

    code: int = INTERNAL_ERROR
    data: Any = None


class ServiceDown(BridgeError):
    """Raised when no responder answers for a service."""

    code = codes.NO_RESPONDER

    def __init__(self, svc: str) -> None:
        super().__init__(f"no responder is serving '{svc}'; start one with: mcp-nats serve {svc}")
        self.service = svc


class CallTimeout(BridgeError):
    """Raised when a call's deadline passes before its result arrives."""

    code = codes.DEADLINE

    def __init__(self, tool: str, seconds: float) -> None:
        super().__init__(
            f"{tool} did not finish within {seconds:.3g} s (the call deadline); the responder was told to stop"
        )


class OutcomeUnknown(BridgeError):
    """Raised when the instance running a non-idempotent call went silent: it may or may not have run."""

    code = codes.RESPONDER_LOST

    def __init__(self, tool: str, seconds: float) -> None:
        super().__init__(
            f"the instance running {tool} stopped answering for {seconds:.3g} s; the outcome is unknown and the "
            "call was not retried because the tool is not idempotent; check the result before calling again"
        )


class CircuitOpen(BridgeError):
    """Raised while a service's circuit breaker is open: calls fail fast instead of piling onto it."""

    code = codes.CIRCUIT_OPEN

    def __init__(self, svc: str, retry_in: float) -> None:
        when = f"retry in {retry_in:.1f} s" if retry_in > 0 else "a probe call is already testing it"
        super().__init__(f"'{svc}' has been failing, so calls to it are paused (circuit open); {when}")
        self.service = svc


class BusUnavailable(BridgeError):
    """Raised when NATS cannot be reached."""

    code = codes.NOT_CONNECTED

    def __init__(self, url: str) -> None:
        super().__init__(f"NATS is not reachable at {url}; start it with: mcp-nats up")


class RequestTooLarge(BridgeError):
    """Raised when a request is larger than the bus's max_payload."""

    code = codes.PAYLOAD_TOO_LARGE

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the request is {size} bytes, more than the bus allows ({limit} bytes)")


class RemoteError(BridgeError):
    """Raised when a responder answers with a JSON-RPC error; code, message and data pass through."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class InvalidParams(BridgeError):
    """Raised when the client's params are wrong (unknown tool, bad cursor, missing _meta)."""

    code = INVALID_PARAMS


class MethodNotFound(BridgeError):
    """Raised for a method the bridge does not serve."""

    code = METHOD_NOT_FOUND

    def __init__(self, method: str) -> None:
        super().__init__(f"Method not found: {method}")


class UnsupportedVersion(BridgeError):
    """Raised when a modern request names a protocol version the bridge does not speak."""

    code = UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, requested: str) -> None:
        super().__init__("Unsupported protocol version")
        self.data = {"supported": [*MODERN_VERSIONS, *reversed(HANDSHAKE_VERSIONS)], "requested": requested}


class Forbidden(BridgeError):
    """Raised when the NATS server refuses to let this bridge's identity publish a call (issue #11)."""

    code = codes.PERMISSION

    def __init__(self, tool: str, identity: str) -> None:
        super().__init__(
            f"{identity or 'this bridge'} may not call {tool}: the NATS server refused it (the security policy does not "
            "allow it for this identity; see `mcp-nats auth init`)"
        )
        self.data = {"tool": tool, "identity": identity}


def reply_error(headers: dict[str, str] | None, body: bytes) -> RemoteError | None:
    """The responder's error in a final reply (ADR-32 headers, JSON-RPC error body), or None for a result."""
    if not headers or SERVICE_ERROR_CODE not in headers:
        return None
    try:
        obj = _error_decoder.decode(body)
        return RemoteError(obj.code, obj.message, None if obj.data is UNSET else obj.data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        try:
            code = int(headers[SERVICE_ERROR_CODE])
        except ValueError:
            code = INTERNAL_ERROR
        return RemoteError(code, headers.get(SERVICE_ERROR) or "the responder reported an error")


def to_error(exc: BaseException) -> tuple[int, str, Any]:
    """(code, message, data) for any exception; the only place exceptions become wire errors."""
    if isinstance(exc, BridgeError):
        return exc.code, str(exc), exc.data
    if isinstance(exc, be.BusError):
        return exc.code, str(exc), None
    log.error("internal error", exc_info=exc)
    return INTERNAL_ERROR, "internal error in the bridge (details are in its log on stderr)", None

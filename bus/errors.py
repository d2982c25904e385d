"""Errors raised by the bus.

    BusError                      base; `code` is the JSON-RPC code a bridge would answer with
     ├── NotConnected             the server cannot be reached (or the connection was closed)
     │    └── CredentialsError    the credentials file is missing, unreadable or not a .creds file
     ├── NoResponders             nothing subscribes to the subject (server status 503)
     ├── DeadlineExceeded         no final reply before the deadline
     ├── ResponderLost            the responder stopped sending liveness frames mid-call
     ├── PayloadTooLarge          a message is larger than the server's max_payload
     └── PermissionDenied         the server refused a publish or subscribe

Only `bus/` sees `nats.errors`; `translate` turns them into these.
"""

from __future__ import annotations

import nats.errors

from schemas.errors import (
    DEADLINE,
    NO_RESPONDER,
    NOT_CONNECTED,
    PAYLOAD_TOO_LARGE,
    PERMISSION,
    RESPONDER_LOST,
)


class BusError(Exception):
    """Base of every bus failure; `code` is a JSON-RPC error code."""

    code: int = NOT_CONNECTED


class NotConnected(BusError):
    """Raised when the server cannot be reached, or the connection is closed or draining."""

    code = NOT_CONNECTED

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach NATS at {url}: {reason}")
        self.url = url


class CredentialsError(NotConnected):
    """Raised before connecting when the credentials file cannot be used; the message names the file."""

    def __init__(self, path: str, reason: str) -> None:
        BusError.__init__(self, f"cannot use the NATS credentials file {path}: {reason}")
        self.url = ""
        self.path = path


class NoResponders(BusError):
    """Raised when the server reports that no subscription matches a request's subject."""

    code = NO_RESPONDER

    def __init__(self, subject: str) -> None:
        super().__init__(f"no responder is subscribed to {subject!r}")
        self.subject = subject


class DeadlineExceeded(BusError):
    """Raised when a request's deadline passes before its final reply arrives."""

    code = DEADLINE

    def __init__(self, subject: str, seconds: float) -> None:
        super().__init__(f"no reply on {subject!r} within {seconds:.3g} s")
        self.subject = subject
        self.seconds = seconds


class ResponderLost(BusError):
    """Raised when a responder that took a request goes silent for longer than the liveness window."""

    code = RESPONDER_LOST

    def __init__(self, subject: str, seconds: float) -> None:
        super().__init__(f"the responder handling {subject!r} went silent for {seconds:.3g} s")
        self.subject = subject


class PayloadTooLarge(BusError):
    """Raised when a message is bigger than the server's max_payload."""

    code = PAYLOAD_TOO_LARGE

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the message is {size} bytes, more than the server's max_payload of {limit} bytes")
        self.size = size
        self.limit = limit


class PermissionDenied(BusError):
    """Raised when the server refuses a publish or subscribe for lack of permission."""

    code = PERMISSION

    def __init__(self, detail: str, *, subject: str = "", user: str = "") -> None:
        super().__init__(f"permission denied by the NATS server: {detail}")
        self.subject = subject
        self.user = user


def translate(
    exc: BaseException, *, subject: str = "", url: str = "", size: int = 0, limit: int = 0
) -> BusError:
    """Map a nats-py exception to ours (callers `raise translate(e) from e`)."""
    if isinstance(exc, BusError):
        return exc
    if isinstance(exc, nats.errors.NoRespondersError):
        return NoResponders(subject)
    if isinstance(exc, nats.errors.MaxPayloadError):
        return PayloadTooLarge(size, limit)
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return DeadlineExceeded(subject, 0)
    text = str(exc).lower()
    if "permissions violation" in text or "authorization" in text:
        return PermissionDenied(str(exc))
    reason = type(exc).__name__ if not str(exc) else str(exc)
    return NotConnected(url or "the server", reason)

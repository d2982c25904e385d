"""Logging set-up for the entry points, and the call context that JSON log lines carry.

`setup_logging(level, "text")` keeps the readable one-line format for a terminal;
`setup_logging(level, "json")` writes one JSON object per line on stderr: `time` (RFC 3339 UTC,
milliseconds), `level`, `logger`, `message`, `callId` and `traceId` while a call is being handled,
and `exc` with the traceback when there is one. Both go to stderr: stdout is the bridge's wire.

The call context is one ContextVar holding the call itself (the responder's ToolCall, the bridge's
BridgeRequest), set by `LogContext` (a CallObserver and a BridgeObserver) when a call starts and
reset when it ends; the formatter reads `call_id` and `traceparent` from it when a line is written,
so ids filled in after the start (the bridge's call id) are there too. Each request runs in its
own task, so what `call_started` sets is what the handler's log lines see.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar, Token
from typing import Final, Literal

import msgspec

from schemas.observe import BridgeRequest, CircuitState, Refusal, ToolCall

CURRENT: Final[ContextVar[ToolCall | BridgeRequest | None]] = ContextVar(
    "mcp_nats_current_call", default=None
)

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_encode = msgspec.json.Encoder().encode
_NO_TRACE: Final = "0" * 32
_TRACEPARENT: Final = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), or None."""
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent)
    return m[1] if m is not None and m[1] != _NO_TRACE else None


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises on odd arguments (it falls back to `repr`)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        call = CURRENT.get()
        if call is not None:
            if call.call_id:
                out["callId"] = call.call_id
            trace = trace_id_of(call.traceparent)
            if trace:
                out["traceId"] = trace
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        try:
            return _encode(out).decode()
        except (TypeError, msgspec.EncodeError):
            return _encode({k: v if isinstance(v, str) else repr(v) for k, v in out.items()}).decode()


def _rfc3339(created: float) -> str:
    seconds = int(created)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"
    )


def setup_logging(level: str, fmt: Literal["text", "json"] = "text") -> None:
    """Configure the root logger once, for an entry point: stderr, the given level and format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


class LogContext:
    """Makes the call being handled the log context (CallObserver and BridgeObserver). Installed only with
    `log_format = "json"`, which is what reads it."""

    def __init__(self) -> None:
        self._key = f"log:{id(self)}"

    def call_started(self, call: ToolCall) -> Refusal | None:
        call.scratch[self._key] = CURRENT.set(call)
        return None

    def call_ended(self, call: ToolCall) -> None:
        _reset(call.scratch.pop(self._key, None))

    def request_started(self, req: BridgeRequest) -> None:
        req.scratch[self._key] = CURRENT.set(req)

    def request_ended(self, req: BridgeRequest) -> None:
        _reset(req.scratch.pop(self._key, None))

    def retried(self, service: str) -> None:
        return None

    def circuit_changed(self, service: str, state: CircuitState) -> None:
        return None

    def instances_changed(self, service: str, count: int) -> None:
        return None


def _reset(token: object) -> None:
    if not isinstance(token, Token):
        return
    try:
        CURRENT.reset(token)
    except ValueError:  # ended in another context than it started: that context ends with its task
        CURRENT.set(None)

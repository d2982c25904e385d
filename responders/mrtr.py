"""Multi round-trip requests (MCP 2026-07-28): how a handler asks the client for input, statelessly.

A handler that needs sampling, elicitation or the client's roots calls `ctx.sample(...)`,
`ctx.elicit(...)` or `ctx.list_roots()`. Without an answer yet, that raises `InputRequired`;
the runtime replies `input_required` with the request and a `requestState`, and the caller
re-issues the call with `inputResponses` and the same `requestState`. The handler then runs
again from the top and this time gets the answers. Nothing is kept on the instance, so the
retry may land on any instance of the service.

`requestState` is signed (HMAC-SHA256 with a key all instances share): it binds the tool,
a digest of the arguments and an expiry, and carries the answers of earlier rounds. A
tampered, expired or misapplied state is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, Final

import msgspec

STATE_TTL: Final = 600.0
_encoder: Final = msgspec.json.Encoder(order="sorted")


class InputRequired(Exception):
    """Raised (through Context) when a handler needs answers from the client first."""

    def __init__(self, requests: dict[str, dict[str, Any]]) -> None:
        super().__init__("input required")
        self.requests = requests


class InvalidState(Exception):
    """Raised when a requestState fails its integrity check, has expired, or belongs to another call."""


def arguments_digest(raw_arguments: bytes) -> str:
    """A digest of the arguments that ignores formatting and key order."""
    try:
        canonical = _encoder.encode(msgspec.json.decode(raw_arguments or b"{}"))
    except msgspec.DecodeError:
        canonical = raw_arguments
    return hashlib.sha256(canonical).hexdigest()[:32]


class StateSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the requestState key must be at least 16 bytes")
        self._key = key

    def sign(self, tool: str, digest: str, responses: dict[str, Any]) -> str:
        body = _encoder.encode({"t": tool, "a": digest, "r": responses, "x": int(time.time() + STATE_TTL)})
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return _b64(body) + "." + _b64(mac)

    def verify(self, state: str, tool: str, digest: str) -> dict[str, Any]:
        """The answers carried by a valid state for this tool and these arguments; raises InvalidState."""
        try:
            body_b64, mac_b64 = state.split(".", 1)
            body, mac = _unb64(body_b64), _unb64(mac_b64)
        except ValueError:
            raise InvalidState("requestState is malformed") from None
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise InvalidState("requestState failed its integrity check")
        data = msgspec.json.decode(body)
        if data.get("t") != tool or data.get("a") != digest:
            raise InvalidState("requestState belongs to another call")
        if float(data.get("x", 0)) < time.time():
            raise InvalidState("requestState has expired; call the tool again")
        responses = data.get("r")
        return responses if isinstance(responses, dict) else {}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None

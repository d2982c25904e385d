"""Errors of the ai service, and the one place httpx's exceptions are translated (`map_http_errors`).

ToolError
 └── AiError                 base
      ├── UpstreamUnavailable   the model server cannot be reached
      ├── UpstreamTimeout       the model server went quiet for longer than read_timeout
      ├── UpstreamRefused       the model server answered with an error (status and its message)
      └── NoModel               no model named and no default configured
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import msgspec

from ...errors import ToolError


class AiError(ToolError):
    """Base of the ai service's errors."""


class UpstreamUnavailable(AiError):
    """Raised when the model server cannot be reached (refused, DNS, TLS)."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"cannot reach the model server at {url}: {why}")


class UpstreamTimeout(AiError):
    """Raised when the model server sends nothing for longer than the read timeout."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(f"the model server at {url} sent nothing for {seconds:g} s; the call was abandoned")


class UpstreamRefused(AiError):
    """Raised when the model server answers with an error status; carries its own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the model server refused the request ({status}): {message[:500]}")
        self.status = status


class NoModel(AiError):
    """Raised when a call names no model and the service has no default for it."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"no model given for {what} and no default configured; pass model, or start the service with --model"
        )


def error_message(body: bytes) -> str:
    """The error text of an Ollama ({"error": "..."}) or OpenAI ({"error": {"message": ...}}) error body."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace").strip() or "(no message)"
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err if err is not None else data)


@contextlib.contextmanager
def map_http_errors(url: str, read_timeout: float) -> Iterator[None]:
    """httpx exceptions as AiErrors (the only place that sees them)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        if isinstance(exc, httpx.ConnectTimeout):
            raise UpstreamUnavailable(url, "connect timed out") from exc
        raise UpstreamTimeout(url, read_timeout) from exc
    except httpx.ConnectError as exc:
        raise UpstreamUnavailable(url, str(exc) or "connection refused") from exc
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(url, type(exc).__name__) from exc

"""The redis service's errors, and the one place redis-py's exceptions become them.

    ToolError                  (responders.errors) a result with isError: true
     └── RedisToolError        Redis refused or failed the command; the sentence says why
          ├── KeyRefused       the key is outside the service's --keys allowlist (Redis never saw the call)
          └── ConnectionLost   Redis cannot be reached or the connection broke; retry the call

`map_redis_errors()` is the boundary (STYLE 22); messages pass through `Secrets.scrub`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import redis.exceptions as rx

from ...errors import ToolError
from ..dsn import Secrets

_PIPELINE = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)
"""redis-py's prefix on an error inside a pipeline (the `get` tool's), dropped: Redis's sentence is the news."""


def _said(exc: Exception, secrets: Secrets) -> str:
    return _PIPELINE.sub("", secrets.scrub(str(exc)))


class RedisToolError(ToolError):
    """Raised when Redis refuses or fails a command (wrong type, no permission, out of memory, ...)."""


class KeyRefused(RedisToolError):
    """Raised before Redis sees the call, when a key is outside the allowlist."""

    def __init__(self, service: str, key: str, patterns: list[str]) -> None:
        super().__init__(
            f"refused: the {service} service only serves keys matching {', '.join(patterns)}; {key!r} is not one of them"
        )


class ConnectionLost(RedisToolError):
    """Raised when Redis cannot be reached, times out, or the connection breaks during the call."""


@contextlib.contextmanager
def map_redis_errors(secrets: Secrets, *, service: str, timeout_s: float) -> Iterator[None]:
    """Translate redis-py's exceptions raised inside the block into RedisToolError sentences."""
    try:
        yield
    except rx.AuthenticationError as exc:
        raise ConnectionLost(f"Redis refused the login: {secrets.scrub(str(exc))}") from None
    except rx.TimeoutError:
        raise ConnectionLost(f"Redis did not answer within {timeout_s:g} s; retry the call") from None
    except rx.ConnectionError as exc:
        raise ConnectionLost(
            f"cannot reach Redis ({secrets.scrub(str(exc))}); retry the call later"
        ) from None
    except rx.NoPermissionError as exc:
        raise RedisToolError(f"permission denied by Redis: {_said(exc, secrets)}") from None
    except rx.ResponseError as exc:
        text = _said(exc, secrets)
        if text.startswith("WRONGTYPE"):
            raise RedisToolError(f"wrong type: {text.removeprefix('WRONGTYPE ')}; call type first") from None
        raise RedisToolError(f"Redis error: {text}") from None
    except rx.RedisError as exc:
        raise RedisToolError(f"Redis error: {secrets.scrub(str(exc))}") from None

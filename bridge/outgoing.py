"""Server-to-client requests (legacy era): sampling, elicitation and roots, sent on stdout.

Owns the futures of requests in flight; `answer` resolves one when the client's response
line arrives. Only client methods may be asked, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import msgspec
from msgspec import UNSET, Raw

from schemas.jsonrpc import Message, encode_request

from .errors import InvalidParams, RemoteError

CLIENT_METHODS: Final = frozenset({"sampling/createMessage", "elicitation/create", "roots/list"})
_encoder: Final = msgspec.json.Encoder()


class Outgoing:
    def __init__(self, write: Callable[[bytes], None], timeout: float) -> None:
        self._write = write
        self._timeout = timeout
        self._pending: dict[str, asyncio.Future[Raw]] = {}
        self._next = 0

    async def ask(self, method: str, params: Any) -> Any:
        """Send one request to the client and return its decoded result; RemoteError for its error."""
        if method not in CLIENT_METHODS:
            raise InvalidParams(f"a service asked the client for {method!r}, which is not a client method")
        self._next += 1
        rid = f"mcp-nats-{self._next}"
        fut: asyncio.Future[Raw] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._write(encode_request(rid, method, Raw(_encoder.encode(params))))
            raw = await asyncio.wait_for(fut, self._timeout)
        except TimeoutError:
            raise InvalidParams(f"the client did not answer {method} in time") from None
        finally:
            self._pending.pop(rid, None)
        return msgspec.json.decode(raw)

    def answer(self, msg: Message) -> None:
        """A response line from the client; ignored unless it answers a request still waiting."""
        fut = self._pending.get(msg.id) if isinstance(msg.id, str) else None
        if fut is None or fut.done():
            return
        if msg.error is not UNSET:
            fut.set_exception(
                RemoteError(
                    msg.error.code, msg.error.message, None if msg.error.data is UNSET else msg.error.data
                )
            )
        else:
            fut.set_result(msg.result if msg.result is not UNSET else Raw(b"{}"))

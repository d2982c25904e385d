"""The per-call context a handler may ask for by annotating a parameter with `Context`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec


class Context:
    """What a handler knows about its call, and how it talks back while running.

    `report_progress` reaches the client as `notifications/progress` only when the client
    asked for progress (sent a progressToken); otherwise it is a no-op.
    """

    __slots__ = ("_send", "call_id", "client", "deadline", "progress_token", "protocol_version", "service", "tool")

    def __init__(
        self,
        *,
        call_id: str,
        service: str,
        tool: str,
        client: str,
        protocol_version: str,
        deadline: float | None,
        progress_token: int | str | None,
        send: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self.call_id = call_id
        self.service = service
        self.tool = tool
        self.client = client
        self.protocol_version = protocol_version
        self.deadline = deadline
        self.progress_token = progress_token
        self._send = send

    @property
    def remaining(self) -> float | None:
        """Seconds left before the caller gives up, or None without a deadline."""
        return None if self.deadline is None else self.deadline - time.time()

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._send(msgspec.json.encode({"jsonrpc": "2.0", "method": "notifications/progress", "params": params}))

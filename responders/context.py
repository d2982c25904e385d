"""The per-call context a handler may ask for by annotating a parameter with `Context`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec

from schemas.errors import MISSING_CAPABILITY

from .errors import ProtocolError
from .mrtr import InputRequired

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


class Context:
    """What a handler knows about its call, and how it talks back while running.

    `report_progress` reaches the client as `notifications/progress` only when the client
    asked for progress (sent a progressToken); `log` only at or above the level the client
    asked for. `elicit`, `sample` and `list_roots` ask the client (see mrtr.py): the handler
    may be run again from the top with the answers, so code before them must be safe to repeat.
    """

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
        log_level: str | None = None,
        client_capabilities: dict[str, Any] | None = None,
        responses: dict[str, Any] | None = None,
        events: Any = None,
    ) -> None:
        self.call_id = call_id
        self.service = service
        self.tool = tool
        self.client = client
        self.protocol_version = protocol_version
        self.deadline = deadline
        self.progress_token = progress_token
        self.client_capabilities = client_capabilities or {}
        self._send = send
        self._min_log = LOG_LEVELS.index(log_level) if log_level in LOG_LEVELS else None
        self._responses = responses or {}
        self._asked = 0
        self.events = events
        """The service's Events (resource_updated, list_changed), when it runs on a bus."""

    @property
    def remaining(self) -> float | None:
        """Seconds left before the caller gives up, or None without a deadline."""
        return None if self.deadline is None else self.deadline - time.time()

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._notify("notifications/progress", params)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """A log message for the client (`notifications/message`), if it asked for this level."""
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        if self._min_log is None or LOG_LEVELS.index(level) < self._min_log:
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger:
            params["logger"] = logger
        await self._notify("notifications/message", params)

    async def _notify(self, method: str, params: dict[str, Any]) -> None:
        await self._send(msgspec.json.encode({"jsonrpc": "2.0", "method": method, "params": params}))

    # -- asking the client (multi round-trip) -------------------------------------------------

    async def elicit(self, message: str, schema: dict[str, Any], *, key: str | None = None) -> dict[str, Any]:
        """Ask the user for structured input (form mode). Returns the ElicitResult: action, content."""
        params = {"mode": "form", "message": message, "requestedSchema": schema}
        return self._ask("elicitation", "elicitation/create", params, key)

    async def sample(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Ask the client's model for a completion. Returns the CreateMessageResult: role, content, model."""
        params: dict[str, Any] = {"messages": messages, "maxTokens": max_tokens}
        if system_prompt is not None:
            params["systemPrompt"] = system_prompt
        return self._ask("sampling", "sampling/createMessage", params, key)

    async def list_roots(self, *, key: str | None = None) -> list[dict[str, Any]]:
        """The client's roots (`file://` URIs with names)."""
        result = self._ask("roots", "roots/list", {}, key)
        roots = result.get("roots", [])
        return roots if isinstance(roots, list) else []

    def ask(
        self, capability: str, method: str, params: dict[str, Any], *, key: str | None = None
    ) -> dict[str, Any]:
        """Send the client any server-to-client request (`method` with `params` as given, e.g. relayed
        from an attached server); `capability` is the client capability it needs. Returns the result."""
        return self._ask(capability, method, params, key)

    def _ask(self, capability: str, method: str, params: dict[str, Any], key: str | None) -> dict[str, Any]:
        self._asked += 1
        k = key or f"{capability}-{self._asked}"
        if k in self._responses:
            answer = self._responses[k]
            return answer if isinstance(answer, dict) else {}
        if capability not in self.client_capabilities:
            raise ProtocolError(
                MISSING_CAPABILITY,
                f"{self.service}.{self.tool} needs the client capability '{capability}', which this client did not declare",
                {"requiredCapabilities": {capability: {}}},
            )
        raise InputRequired({k: {"method": method, "params": params}})

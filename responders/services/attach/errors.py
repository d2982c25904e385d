"""Errors of the attach service (a pool of stdio MCP servers).

AttachError              base
 ├── ChildError          the child answered a request with a JSON-RPC error (code, message, data kept)
 ├── ChildDied           the child exited (or its pipe broke) before it answered
 └── PoolClosed          the pool is shutting down, or no child could be started
"""

from __future__ import annotations


class AttachError(Exception):
    """Base of the attach service's errors."""


class ChildError(AttachError):
    """Raised when the child answers a request with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class ChildDied(AttachError):
    """Raised when the child exits, or its stdin breaks, while a request waits for its reply."""

    def __init__(self, name: str, returncode: int | None) -> None:
        how = "is gone" if returncode is None else f"exited with status {returncode}"
        super().__init__(f"the attached server {name} {how} before it answered")
        self.name = name
        self.returncode = returncode


class PoolClosed(AttachError):
    """Raised when a request needs a child but the pool is closing or cannot start one."""

    def __init__(self, service: str, why: str) -> None:
        super().__init__(f"no child of the attached server {service} can take the request: {why}")

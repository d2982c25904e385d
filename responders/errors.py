"""Errors a tool handler raises, and how the runtime reports them.

    ResponderError           base
     ├── ToolError           the tool failed in a way the model can act on -> result with isError: true
     │    └── InvalidArguments   arguments do not match the input schema (names the field)
     └── ProtocolError       the request itself is wrong -> JSON-RPC error (e.g. unknown tool, -32602)

Any other exception from a handler is a bug: it is logged with its traceback and the caller
gets a generic sentence with the call id, never a repr or a stack trace.
"""

from __future__ import annotations

import re

from schemas.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND


class ResponderError(Exception):
    """Base of the runtime's errors."""


class ToolError(ResponderError):
    """Raised by a handler when the tool fails; the message is shown to the model as-is."""


class InvalidArguments(ToolError):
    """Raised when arguments fail validation against the tool's input schema."""

    _AT = re.compile(r" - at `\$(?:\.([A-Za-z_][\w]*))?(.*)`$")

    def __init__(self, tool: str, detail: str) -> None:
        field = None
        m = self._AT.search(detail)
        if m:
            detail = detail[: m.start()]
            field = (m[1] or "") + (m[2] or "")
        if detail.startswith("Object missing required field"):
            name = detail.split("`")[1] if "`" in detail else "?"
            msg = f"invalid arguments for {tool}: missing required argument '{name}'"
        elif detail.startswith("Object contains unknown field"):
            name = detail.split("`")[1] if "`" in detail else "?"
            msg = f"invalid arguments for {tool}: unknown argument '{name}'"
        elif field:
            msg = f"invalid argument '{field}' for {tool}: {detail[0].lower()}{detail[1:]}"
        else:
            msg = f"invalid arguments for {tool}: {detail}"
        super().__init__(msg)
        self.field = field


class ProtocolError(ResponderError):
    """Raised when a request is malformed or names something that does not exist; `code` is JSON-RPC's."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def unknown_tool(name: str) -> ProtocolError:
    return ProtocolError(INVALID_PARAMS, f"Unknown tool: {name}")


def unknown_operation(op: str) -> ProtocolError:
    return ProtocolError(METHOD_NOT_FOUND, f"Method not found: {op}")


class UnknownService(ResponderError):
    """Raised when no plugin (entry point in `mcp_nats.services`, or registered) has this name."""

    def __init__(self, name: str, known: list[str], detail: str | None = None) -> None:
        self.name = name
        super().__init__(
            detail or f"unknown service {name!r}; known services: {', '.join(known) or '(none)'}"
        )


class MissingExtra(ResponderError):
    """Raised when a service's backend library is not installed; names the extra that brings it."""

    def __init__(self, service: str, extra: str | None, module: str) -> None:
        self.service = service
        self.extra = extra
        self.module = module
        hint = (
            f"install it with: pip install 'mcp-nats[{extra}]'"
            if extra
            else "install the package that provides it"
        )
        super().__init__(
            f"the {service} service needs the Python module {module!r}, which is not installed; {hint}"
        )

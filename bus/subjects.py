"""Subject construction from a configurable root (DESIGN.md section 2). Builds names, nothing else."""

from __future__ import annotations

import re
from typing import Final

TOKEN_SAFE: Final = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch: "$" would let a trailing newline through
UNSAFE_TOOL_TOKEN: Final = "_"


def is_token(value: str) -> bool:
    return TOKEN_SAFE.fullmatch(value) is not None


def tool_token(tool: str) -> str:
    """The subject token a tool travels under: its name when token-safe, else `_` (body decides)."""
    return tool if is_token(tool) and tool != UNSAFE_TOOL_TOKEN else UNSAFE_TOOL_TOKEN


class Subjects:
    """All subjects under one root, e.g. `mcp.fs.tools.call.read_text_file`."""

    __slots__ = ("root",)

    def __init__(self, root: str = "mcp") -> None:
        if not is_token(root):
            raise ValueError(f"subject root {root!r} must be one token of letters, digits, '_' or '-'")
        self.root = root

    def service(self, svc: str) -> str:
        return f"{self.root}.{svc}"

    def service_requests(self, svc: str) -> str:
        """The wildcard a service's queue group subscribes to."""
        return f"{self.root}.{svc}.>"

    def discover(self, svc: str) -> str:
        return f"{self.root}.{svc}.discover"

    def tools_list(self, svc: str) -> str:
        return f"{self.root}.{svc}.tools.list"

    def tool_call(self, svc: str, tool: str) -> str:
        return f"{self.root}.{svc}.tools.call.{tool_token(tool)}"

    def cancel(self, svc: str) -> str:
        return f"{self.root}.{svc}.cancel"

    def events(self, svc: str, kind: str) -> str:
        return f"{self.root}.events.{svc}.{kind}"

    def all_events(self, kind: str = "*") -> str:
        return f"{self.root}.events.*.{kind}"

    def audit(self, svc: str, tool: str) -> str:
        return f"{self.root}.audit.{svc}.{tool_token(tool)}"

    def operation(self, subject: str, svc: str) -> str | None:
        """The part after `<root>.<svc>.` (e.g. `tools.call.x`), or None if the subject is not the service's."""
        prefix = f"{self.root}.{svc}."
        return subject[len(prefix) :] if subject.startswith(prefix) else None

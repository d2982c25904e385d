"""The merged tool list of every discovered service, as the client sees it.

Tools are exposed as `<svc><sep><tool>`. Service names contain no `_` and the separator is
made of `_` only, so the first `_` always ends the service name: two services can never
produce the same exposed name. Names are kept within `max_name` characters (Claude Code
prefixes `mcp__<server>__` and the API allows 64), shortening with a digest when needed.
The list order is deterministic (service, then the service's own order), and pages are
cut by opaque cursors that stay valid while the list is unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Final

import msgspec

from schemas.mcp import Tool

_encoder: Final = msgspec.json.Encoder()
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Entry:
    exposed: str
    service: str
    tool: Tool
    definition: bytes  # the tool's JSON with the exposed name

    @property
    def retry_safe(self) -> bool:
        return self.tool.retry_safe


class InvalidCursor(ValueError):
    """Raised when a cursor was not issued by this catalog, or the list changed under it."""


def exposed_name(svc: str, tool: str, sep: str, max_name: int) -> str:
    name = f"{svc}{sep}{_UNSAFE.sub('-', tool)}"
    if len(name) <= max_name and _UNSAFE.sub("-", tool) == tool:
        return name
    digest = hashlib.sha256(f"{svc}\x00{tool}".encode()).hexdigest()[:8]
    keep = max(1, max_name - len(digest) - 1)
    return f"{name[:keep]}-{digest}"


class Catalog:
    """An immutable snapshot: exposed name -> entry, in a fixed order, with a content version."""

    def __init__(self, services: dict[str, list[Tool]], sep: str = "_", max_name: int = 53) -> None:
        entries: list[Entry] = []
        for svc in sorted(services):
            for tool in services[svc]:
                name = exposed_name(svc, tool.name, sep, max_name)
                renamed = msgspec.structs.replace(tool, name=name)
                entries.append(Entry(name, svc, tool, _encoder.encode(renamed)))
        self.entries: tuple[Entry, ...] = tuple(entries)
        self.by_name: dict[str, Entry] = {e.exposed: e for e in entries}
        self.services = frozenset(services)
        self.version = hashlib.sha256(b"\n".join(e.definition for e in entries)).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.entries)

    def page(self, cursor: str | None, size: int) -> tuple[tuple[Entry, ...], str | None]:
        """The entries after `cursor` (None or "" for the first page) and the next cursor, if any."""
        start = 0 if not cursor else self._decode(cursor)
        end = start + size
        nxt = self._encode(end) if end < len(self.entries) else None
        return self.entries[start:end], nxt

    def _encode(self, offset: int) -> str:
        return base64.urlsafe_b64encode(f"{self.version}:{offset}".encode()).decode().rstrip("=")

    def _decode(self, cursor: str) -> int:
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            version, _, offset = text.partition(":")
            n = int(offset)
        except (ValueError, UnicodeDecodeError):
            raise InvalidCursor("the cursor is not one this server issued") from None
        if version != self.version:
            raise InvalidCursor(
                "the tool list changed since this cursor was issued; list again from the start"
            )
        if not 0 <= n <= len(self.entries):
            raise InvalidCursor("the cursor is out of range")
        return n

    def encode_tools(self, entries: tuple[Entry, ...]) -> bytes:
        return b"[" + b",".join(e.definition for e in entries) + b"]"

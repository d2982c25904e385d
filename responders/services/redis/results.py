"""What the redis tools return: typed Structs (their outputSchema) with a readable text form.

A value that is valid UTF-8 is a JSON string; any other value is `{"base64": "..."}`, so binary
data is never mangled and always says so."""

from __future__ import annotations

import base64
from typing import Any, Literal

import msgspec
from msgspec import Struct

_encoder = msgspec.json.Encoder()


class Binary(Struct, kw_only=True, frozen=True):
    """A value that is not UTF-8 text, base64-encoded."""

    base64: str


Datum = str | Binary


def datum(raw: bytes) -> Datum:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return Binary(base64=base64.b64encode(raw).decode("ascii"))


def label(raw: bytes) -> str:
    """A key or field name as text (non-UTF-8 bytes as \\xNN escapes)."""
    return raw.decode("utf-8", errors="backslashreplace")


def size_of(v: Any) -> int:
    return len(_encoder.encode(v))


def _show(v: Any) -> str:
    if isinstance(v, Binary):
        return f"(base64) {v.base64}"
    return v if isinstance(v, str) else _encoder.encode(v).decode()


class Value(Struct, kw_only=True):
    key: str
    value: Datum | None
    """None when the key (or field) does not exist."""
    size: int | None = None
    """The stored value's length in bytes."""
    truncated: bool = False
    """True when only the first max_value_bytes bytes are returned."""

    def __mcp_text__(self) -> str:
        if self.value is None:
            return f"{self.key}: (nil)"
        cut = f"\n(truncated: first {size_of(self.value)} of {self.size} bytes)" if self.truncated else ""
        return _show(self.value) + cut


class Items(Struct, kw_only=True):
    """A list, set or sorted-set read."""

    key: str
    items: list[Datum]
    scores: list[float] | None = None
    """zrange with with_scores: the score of each item, in order."""
    total: int | None = None
    """How many elements the key holds (when known)."""
    truncated: bool = False

    def __mcp_text__(self) -> str:
        if not self.items:
            return f"{self.key}: (empty)"
        lines = [
            f"{i + 1}) {_show(v)}" + (f"  (score {self.scores[i]:g})" if self.scores is not None else "")
            for i, v in enumerate(self.items)
        ]
        if self.truncated:
            lines.append(
                f"(truncated: {len(self.items)} of {self.total if self.total is not None else 'more'} elements)"
            )
        return "\n".join(lines)


class Hash(Struct, kw_only=True):
    key: str
    fields: dict[str, Datum]
    total: int
    truncated: bool = False

    def __mcp_text__(self) -> str:
        if not self.fields:
            return f"{self.key}: (empty)"
        lines = [f"{k}: {_show(v)}" for k, v in self.fields.items()]
        if self.truncated:
            lines.append(f"(truncated: {len(self.fields)} of {self.total} fields)")
        return "\n".join(lines)


class StreamEntry(Struct, kw_only=True, frozen=True):
    id: str
    fields: dict[str, Datum]


class Stream(Struct, kw_only=True):
    key: str
    entries: list[StreamEntry]
    truncated: bool = False

    def __mcp_text__(self) -> str:
        if not self.entries:
            return f"{self.key}: (no entries)"
        return "\n".join(
            f"{e.id} " + " ".join(f"{k}={_show(v)}" for k, v in e.fields.items()) for e in self.entries
        )


class Keys(Struct, kw_only=True):
    keys: list[str]
    cursor: int
    """Pass it back to continue; 0 means the scan is complete."""

    def __mcp_text__(self) -> str:
        more = f"\n(continue with cursor={self.cursor})" if self.cursor else "\n(scan complete)"
        return ("\n".join(self.keys) if self.keys else "(no keys in this step)") + more


class Count(Struct, kw_only=True):
    key: str | None = None
    count: int
    what: str
    """What was counted: 'length', 'added', 'removed', 'deleted', 'keys', 'ttl seconds'..."""

    def __mcp_text__(self) -> str:
        return (
            f"{self.key}: {self.count} {self.what}" if self.key is not None else f"{self.count} {self.what}"
        )


class KeyType(Struct, kw_only=True):
    key: str
    type: Literal["string", "list", "set", "zset", "hash", "stream", "none"] | str

    def __mcp_text__(self) -> str:
        return f"{self.key}: {self.type}"


class Ttl(Struct, kw_only=True):
    key: str
    ttl: int | None
    """Seconds left; None when the key has no expiry."""
    exists: bool

    def __mcp_text__(self) -> str:
        if not self.exists:
            return f"{self.key}: does not exist"
        return f"{self.key}: {'no expiry' if self.ttl is None else f'{self.ttl} s left'}"


class Done(Struct, kw_only=True):
    ok: bool
    message: str

    def __mcp_text__(self) -> str:
        return self.message


class Info(Struct, kw_only=True):
    section: str
    info: dict[str, Any]

    def __mcp_text__(self) -> str:
        return "\n".join(f"{k}: {_show(v)}" for k, v in self.info.items())

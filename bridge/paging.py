"""Pages of a merged list with opaque cursors (an offset, encoded), and the 2026-07-28 cache hints."""

from __future__ import annotations

import base64
from typing import Final

import msgspec
from msgspec import Raw

from schemas.mcp import CACHE_HINTS_PRIVATE

from .errors import InvalidParams

_encoder: Final = msgspec.json.Encoder()
CACHE_HINTS: Final = b"," + _encoder.encode(CACHE_HINTS_PRIVATE)[1:-1]


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError(text)
        start = int(text[2:])
    except (ValueError, UnicodeDecodeError):
        raise InvalidParams("invalid cursor: not one this server issued") from None
    if not 0 <= start <= length:
        raise InvalidParams("invalid cursor: out of range")
    return start


def page(key: bytes, items: list[Raw], cursor: str | None, size: int, modern: bool) -> bytes:
    """`{"<key>": [...], "nextCursor"?: ...}` for the items after `cursor`, with cache hints for modern clients."""
    start = decode_cursor(cursor, len(items)) if cursor else 0
    end = start + size
    parts = [b'{"', key, b'":[', b",".join(bytes(i) for i in items[start:end]), b"]"]
    if end < len(items):
        parts.append(b',"nextCursor":' + _encoder.encode(encode_cursor(end)))
    if modern:
        parts.append(CACHE_HINTS)
    parts.append(b"}")
    return b"".join(parts)

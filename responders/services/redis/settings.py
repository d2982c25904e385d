"""The `[redis]` settings section (also `serve redis --url ... --write --keys 'app:*'`, `MCP_NATS_REDIS_*`)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field


class RedisSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    """redis://[:password@]host:6379/0 or rediss:// (the password is never printed). Required."""
    write: bool = False
    """Register the write tools (set, delete, hset, lpush, ...). Off: they are neither listed nor callable."""
    keys: list[str] = field(default_factory=list)
    """Key patterns (Redis glob: * ? [abc] [^a] \\x) a call may touch; empty: every key."""
    max_value_bytes: Annotated[int, Meta(ge=16, le=64 * 1024 * 1024)] = 1024 * 1024
    """Bytes of one value read or written at most (longer reads are cut and flagged)."""
    max_items: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    """Elements a collection read returns at most (hash fields, list items, members, stream entries, keys per scan)."""
    max_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    """Bytes of one result at most."""
    timeout: Annotated[float, Meta(gt=0, le=300)] = 10.0
    """Seconds one command (and connecting) may take."""

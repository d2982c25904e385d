"""The `[postgres]` settings section (also `serve postgres --url ... --write`, `MCP_NATS_POSTGRES_*`)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct


class PostgresSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    """postgresql://user:password@host:5432/db (the password is never printed). Required."""
    write: bool = False
    """Register `execute` and allow `explain(analyze=true)`. Off: every call runs in a READ ONLY transaction."""
    statement_timeout: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    """Seconds a statement may run (the connection's statement_timeout); the server cancels it after that."""
    idle_in_transaction_timeout: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    """Seconds a transaction may sit idle (the connection's idle_in_transaction_session_timeout)."""
    max_rows: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    """Rows a result may hold (a call's `limit` may only lower it)."""
    max_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    """Bytes of JSON a result may hold; fetching stops there."""
    pool_size: Annotated[int, Meta(ge=1, le=200)] = 10
    """Connections per instance."""
    connect_timeout: Annotated[float, Meta(gt=0, le=300)] = 10.0

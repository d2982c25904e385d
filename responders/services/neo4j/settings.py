"""The `[neo4j]` settings section (also `serve neo4j --url ... --write`, `MCP_NATS_NEO4J_*`)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct


class Neo4jSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    """neo4j://user:password@host:7687 (or bolt://, neo4j+s://; credentials are taken out of the URL
    and given to the driver as its auth; the password is never printed). Required."""
    database: str = ""
    """The database to use (empty: the server's default)."""
    write: bool = False
    """Register write_cypher. Off: only READ sessions exist."""
    timeout: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    """Seconds a query may run (the server's transaction timeout) and connecting may take."""
    max_rows: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    max_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    max_list: Annotated[int, Meta(ge=1, le=100_000)] = 128
    """Lists this long or longer (embeddings) are replaced by a note, as mcp-neo4j-cypher does."""

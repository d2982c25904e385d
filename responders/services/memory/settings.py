"""The `[memory]` settings section."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct


class MemorySettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    bucket: Annotated[str, Meta(pattern=r"^([A-Za-z0-9_-]{1,64})?\Z")] = ""
    """JetStream KV bucket of the knowledge graph. Empty: <root>-memory."""
    replicas: Annotated[int, Meta(ge=0, le=5)] = 0
    """Bucket replicas; 0 follows the cluster (3 when clustered, else 1)."""
    max_retries: Annotated[int, Meta(ge=1, le=10000)] = 200
    """Compare-and-set attempts per key before an update gives up (only under extreme contention)."""

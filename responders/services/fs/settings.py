"""The `[fs]` settings section."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field


class FsSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    roots: list[str] = field(default_factory=list)
    """`DIR` (read-write) or `DIR:ro` (read-only). Empty: the current directory, read-write."""
    max_read_bytes: Annotated[int, Meta(gt=0)] = 1024 * 1024

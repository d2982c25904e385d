"""Builds the memory service from process settings (its bucket is bound when the process connects)."""

from __future__ import annotations

from schemas.config import Settings

from ..service import Service
from .service import build


def from_settings(settings: Settings) -> Service:
    return build(settings.memory)

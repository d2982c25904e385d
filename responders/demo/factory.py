"""Builds the demo service (it needs no settings)."""

from __future__ import annotations

from schemas.config import Settings

from ..service import Service
from .service import build


def from_settings(settings: Settings) -> Service:
    return build()

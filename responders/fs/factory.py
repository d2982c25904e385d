"""Builds the fs service from process settings (kept apart so the service module needs only FsSettings)."""

from __future__ import annotations

from schemas.config import Settings

from ..service import Service
from .service import build


def from_settings(settings: Settings) -> Service:
    return build(settings.fs)

"""The `fs` service: the local filesystem under configured roots (read-write or read-only)."""

from .paths import PathRefused as PathRefused
from .paths import Roots as Roots
from .service import Filesystem as Filesystem
from .service import build as build

__all__ = ["Filesystem", "PathRefused", "Roots", "build"]

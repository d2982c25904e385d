"""The `fs` service: the local filesystem under configured roots (read-write or read-only)."""

from .factory import build as build
from .paths import PathRefused as PathRefused
from .paths import Roots as Roots
from .service import Filesystem as Filesystem

__all__ = ["Filesystem", "PathRefused", "Roots", "build"]

"""The `fs` service: the local filesystem under configured roots (read-write or read-only)."""

from ...plugin import Argument, ServicePlugin
from .build import build as build
from .globs import Excluder as Excluder
from .globs import NameOrPathGlob as NameOrPathGlob
from .paths import PathRefused as PathRefused
from .paths import Roots as Roots
from .service import Filesystem as Filesystem
from .settings import FsSettings as FsSettings
from .walk import Walk as Walk

plugin = ServicePlugin(
    name="fs",
    summary="files under configured directories (read-write, or read-only with DIR:ro)",
    settings=FsSettings,
    build=build,
    arguments=(
        Argument(
            "--root",
            "--fs-root",
            key="roots",
            kind="append",
            metavar="DIR[:ro]",
            help="a directory to serve, read-write, or read-only with ':ro' (repeatable; default: the current directory)",
        ),
    ),
    list_keys=frozenset({"roots"}),
    default=True,
)

__all__ = [
    "Excluder",
    "Filesystem",
    "FsSettings",
    "NameOrPathGlob",
    "PathRefused",
    "Roots",
    "Walk",
    "build",
    "plugin",
]

"""Builds the fs service: the Filesystem's methods registered as tools with their annotations.
A service whose roots are all read-only does not register the write tools at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...plugin import ServiceOptions
from ...service import Service
from .paths import Roots
from .service import VERSION, Filesystem
from .settings import FsSettings


def build(settings: FsSettings, options: ServiceOptions | None = None) -> Service:
    """The fs service for these settings. Raises ValueError when no root is usable."""
    roots = Roots(settings.roots)
    fs = Filesystem(roots, settings.max_read_bytes)
    svc = Service(
        options.name if options is not None else "fs",
        VERSION,
        "Files under configured directories: read, search, inspect and (in read-write roots) write, edit, move, copy, delete.",
        title="Filesystem",
        instructions=(
            "Paths are absolute or relative to the first allowed directory; call list_allowed_directories first. "
            "search_files matches file names, grep_files searches file contents."
        ),
    )
    writable = roots.any_writable

    def t(fn: Callable[..., object], **kw: Any) -> None:
        svc.tool(fn, description=" ".join((fn.__doc__ or "").split()), **kw)

    # Bounded single-file operations (capped reads, stat, one directory) run on the event loop: a thread
    # hop would cost more than the work on a local disk. Walks, content search and writes use threads.
    t(fs.read_text_file, title="Read Text File", read_only=True, blocking=False)
    t(fs.read_media_file, title="Read Media File", read_only=True, blocking=True)
    t(fs.read_multiple_files, title="Read Multiple Files", read_only=True, blocking=True)
    if writable:
        t(fs.write_file, title="Write File", destructive=True, idempotent=True, blocking=True)
        t(fs.edit_file, title="Edit File", destructive=True, blocking=True)
        t(fs.create_directory, title="Create Directory", destructive=False, idempotent=True, blocking=True)
    t(fs.list_directory, title="List Directory", read_only=True, blocking=False)
    t(fs.list_directory_with_sizes, title="List Directory with Sizes", read_only=True, blocking=True)
    t(fs.directory_tree, title="Directory Tree", read_only=True, blocking=True)
    if writable:
        t(fs.move_file, title="Move File", destructive=False, blocking=True)
    t(fs.search_files, title="Search Files", read_only=True, blocking=True)
    t(fs.grep_files, title="Search File Contents", read_only=True, blocking=True)
    t(fs.get_file_info, title="Get File Info", read_only=True)
    t(fs.list_allowed_directories, title="List Allowed Directories", read_only=True)
    if writable:
        t(fs.copy_file, title="Copy File", destructive=True, idempotent=True, blocking=True)
        t(fs.delete_file, title="Delete File", destructive=True, idempotent=True, blocking=True)
    return svc

"""The `fs` service: files under configured roots, with the reference filesystem server's tool names.

Every path goes through `Roots.resolve` (paths.py). A service whose roots are all read-only
does not register the write tools at all.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from typing import Final

from msgspec import Struct

from schemas.config import FsSettings

from ..errors import ToolError
from ..service import Service
from .files import head_lines, read_capped, tail_lines, write_atomic
from .paths import Roots

VERSION: Final = "0.1.0"


class TextOutput(Struct, kw_only=True):
    """A tool's text, also as structuredContent `{content}` (as the reference server returns it)."""

    content: str

    def __mcp_text__(self) -> str:
        return self.content


def _os_error(path: str, exc: OSError) -> ToolError:
    return ToolError(f"{path!r}: {exc.strerror or exc}")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


class Filesystem:
    """The tool implementations; plain methods, directly testable."""

    def __init__(self, roots: Roots, max_read_bytes: int) -> None:
        self.roots = roots
        self.cap = max_read_bytes

    def read_text_file(self, path: str, head: int | None = None, tail: int | None = None) -> TextOutput:
        """Read a file as UTF-8 text. `head` returns only the first N lines, `tail` only the last N
        (not both). Reads stop at the configured byte cap and say so."""
        if head is not None and tail is not None:
            raise ToolError("give head or tail, not both")
        if (head is not None and head < 0) or (tail is not None and tail < 0):
            raise ToolError("head and tail must not be negative")
        real = self.roots.resolve(path)
        try:
            if head is not None:
                lines, cut = head_lines(real, head, self.cap)
                data, note = b"".join(lines), cut
            elif tail is not None:
                lines, cut = tail_lines(real, tail, self.cap)
                data, note = b"".join(lines), cut
            else:
                data, size = read_capped(real, self.cap)
                note = size > len(data)
        except IsADirectoryError:
            raise ToolError(f"{path!r} is a directory; use list_directory") from None
        except OSError as exc:
            raise _os_error(path, exc) from None
        text = data.decode("utf-8", errors="replace")
        if note:
            text += f"\n[truncated at {self.cap} bytes (the fs read cap); use head/tail to read other parts]"
        return TextOutput(content=text)

    def list_directory(self, path: str) -> TextOutput:
        """List a directory: one entry per line, prefixed [DIR] or [FILE], sorted by name."""
        real = self.roots.resolve(path)
        try:
            with os.scandir(real) as it:
                entries = sorted((e.name, e.is_dir()) for e in it)
        except NotADirectoryError:
            raise ToolError(f"{path!r} is not a directory") from None
        except OSError as exc:
            raise _os_error(path, exc) from None
        return TextOutput(content="\n".join(f"[{'DIR' if d else 'FILE'}] {n}" for n, d in entries))

    def get_file_info(self, path: str) -> TextOutput:
        """Size, times, type and permissions of a file or directory."""
        real = self.roots.resolve(path)
        try:
            st = os.stat(real)
        except OSError as exc:
            raise _os_error(path, exc) from None
        created = getattr(st, "st_birthtime", st.st_ctime)
        info = {
            "size": st.st_size,
            "created": _iso(created),
            "modified": _iso(st.st_mtime),
            "accessed": _iso(st.st_atime),
            "isDirectory": stat.S_ISDIR(st.st_mode),
            "isFile": stat.S_ISREG(st.st_mode),
            "permissions": oct(st.st_mode & 0o777)[2:],
        }
        return TextOutput(content="\n".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in info.items()))

    def write_file(self, path: str, content: str) -> TextOutput:
        """Create a file or overwrite it with `content` (UTF-8). Atomic: readers never see half a file."""
        real = self.roots.resolve(path, write=True, must_exist=False)
        if real.is_dir():
            raise ToolError(f"{path!r} is a directory")
        try:
            write_atomic(real, content.encode("utf-8", errors="surrogatepass"))
        except OSError as exc:
            raise _os_error(path, exc) from None
        return TextOutput(content=f"Successfully wrote to {path}")

    def list_allowed_directories(self) -> TextOutput:
        """The directories this service may access, and whether each is read-only."""
        lines = [r.path + ("" if r.writable else " (read-only)") for r in self.roots.roots]
        return TextOutput(content="Allowed directories:\n" + "\n".join(lines))


def build(settings: FsSettings) -> Service:
    """The fs service for these settings. Raises ValueError when no root is usable."""
    roots = Roots(settings.roots)
    fs = Filesystem(roots, settings.max_read_bytes)
    svc = Service(
        "fs",
        VERSION,
        "Files under configured directories: read, list, inspect and (in read-write roots) write.",
        title="Filesystem",
        instructions="Paths are absolute or relative to the first allowed directory; call list_allowed_directories first.",
    )
    svc.tool(fs.read_text_file, read_only=True)
    svc.tool(fs.list_directory, read_only=True)
    svc.tool(fs.get_file_info, read_only=True)
    svc.tool(fs.list_allowed_directories, read_only=True)
    if roots.any_writable:
        svc.tool(fs.write_file, destructive=True, idempotent=True)
    return svc

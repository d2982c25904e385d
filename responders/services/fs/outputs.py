"""What the fs tools return: msgspec Structs that are the structuredContent (the runtime derives
each tool's outputSchema from them) and render their own text block (`__mcp_text__`), which
keeps the reference server's wording so prompts written for it carry over."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType


class TextOutput(Struct, kw_only=True):
    """A tool's text, also as structuredContent `{content}` (as the reference server returns it)."""

    content: str

    def __mcp_text__(self) -> str:
        return self.content


class ReadOutput(Struct, kw_only=True, omit_defaults=True):
    """A text read: `content` (with a note appended when cut), and where to continue."""

    content: str
    truncated: bool = False
    """The read stopped at the fs byte cap."""
    nextOffset: int | UnsetType = UNSET
    """Pass as `offset` to read on from here."""

    def __mcp_text__(self) -> str:
        return self.content


class FileText(Struct, kw_only=True, omit_defaults=True):
    path: str
    content: str | UnsetType = UNSET
    error: str | UnsetType = UNSET
    truncated: bool = False


class MultiReadOutput(Struct, kw_only=True):
    files: list[FileText]

    def __mcp_text__(self) -> str:
        parts = []
        for f in self.files:
            if isinstance(f.error, str):
                parts.append(f"{f.path}: Error - {f.error}")
            else:
                parts.append(f"{f.path}:\n{f.content}\n")
        return "\n---\n".join(parts)


class FileInfo(Struct, kw_only=True):
    size: int
    created: str
    modified: str
    accessed: str
    isDirectory: bool
    isFile: bool
    permissions: str

    def __mcp_text__(self) -> str:
        return "\n".join(
            f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
            for k, v in msgspec.structs.asdict(self).items()
        )


class DirEntry(Struct, kw_only=True, omit_defaults=True):
    name: str
    type: Literal["file", "directory"]
    size: int | UnsetType = UNSET


def _prefix(e: DirEntry) -> str:
    return "[DIR]" if e.type == "directory" else "[FILE]"


class Listing(Struct, kw_only=True, omit_defaults=True):
    path: str
    entries: list[DirEntry]
    truncated: bool = False

    def __mcp_text__(self) -> str:
        lines = [f"{_prefix(e)} {e.name}" for e in self.entries]
        if self.truncated:
            lines.append(f"[listing cut after {len(self.entries)} entries (the fs read cap)]")
        return "\n".join(lines)


def format_size(n: int) -> str:
    """Bytes the way the reference server shows them: `0 B`, `512 B`, `1.50 KB`, `2.00 MB`."""
    units = ("B", "KB", "MB", "GB", "TB")
    if n <= 0:
        return "0 B"
    i = 0
    while i < len(units) - 1 and n >= 1024 ** (i + 1):
        i += 1
    return f"{n} B" if i == 0 else f"{n / 1024**i:.2f} {units[i]}"


class SizedListing(Struct, kw_only=True, omit_defaults=True):
    path: str
    entries: list[DirEntry]
    totalFiles: int
    totalDirectories: int
    totalSize: int
    """Bytes in the files listed (directories count 0)."""
    truncated: bool = False

    def __mcp_text__(self) -> str:
        lines = [
            f"{_prefix(e)} {e.name.ljust(30)} {'' if e.type == 'directory' else format_size(e.size or 0).rjust(10)}"
            for e in self.entries
        ]
        if self.truncated:
            lines.append(f"[listing cut after {len(self.entries)} entries (the fs read cap)]")
        lines += ["", f"Total: {self.totalFiles} files, {self.totalDirectories} directories"]
        lines.append(f"Combined size: {format_size(self.totalSize)}")
        return "\n".join(lines)


class TreeEntry(Struct, kw_only=True, omit_defaults=True):
    name: str
    type: Literal["file", "directory"]
    children: list[TreeEntry] | UnsetType = UNSET
    """Present on every directory (possibly empty), absent on files."""


class DirectoryTree(Struct, kw_only=True, omit_defaults=True):
    path: str
    tree: list[TreeEntry]
    truncated: bool = False
    notes: list[str] = []

    def __mcp_text__(self) -> str:
        text = msgspec.json.format(msgspec.json.encode(self.tree), indent=2).decode()
        return text + "".join(f"\n[{n}]" for n in self.notes)


class SearchOutput(Struct, kw_only=True, omit_defaults=True):
    matches: list[str]
    truncated: bool = False
    notes: list[str] = []

    def __mcp_text__(self) -> str:
        text = "\n".join(self.matches) if self.matches else "No matches found"
        return text + "".join(f"\n[{n}]" for n in self.notes)


class GrepMatch(Struct, kw_only=True, omit_defaults=True):
    path: str
    line: int
    """1-based line number."""
    text: str
    before: list[str] = []
    """Context lines before, oldest first."""
    after: list[str] = []


class GrepOutput(Struct, kw_only=True, omit_defaults=True):
    matches: list[GrepMatch]
    filesSearched: int
    truncated: bool = False
    """max_results, the byte cap or the time budget stopped the search."""
    notes: list[str] = []

    def __mcp_text__(self) -> str:
        out: list[str] = []
        printed: tuple[str, int] | None = None  # (path, last line number shown)
        for m in self.matches:
            first = m.line - len(m.before)
            same_file = printed is not None and printed[0] == m.path
            if printed is not None and (not same_file or first > printed[1] + 1):
                out.append("--")
            start = max(first, printed[1] + 1) if same_file and printed is not None else first
            out += [f"{m.path}-{n}-{m.before[n - first]}" for n in range(start, m.line)]
            out.append(f"{m.path}:{m.line}:{m.text}")
            out += [f"{m.path}-{n}-{t}" for n, t in enumerate(m.after, start=m.line + 1)]
            printed = (m.path, m.line + len(m.after))
        if not out:
            out.append("No matches found")
        out += [f"[{n}]" for n in self.notes]
        return "\n".join(out)


class EditOutput(Struct, kw_only=True):
    diff: str
    """Unified diff (git style) of the change."""
    dryRun: bool

    def __mcp_text__(self) -> str:
        ticks = 3
        while "`" * ticks in self.diff:
            ticks += 1
        fence = "`" * ticks
        return f"{fence}diff\n{self.diff}{fence}\n\n"


class AllowedDirectory(Struct, kw_only=True):
    path: str
    readOnly: bool


class AllowedDirectories(Struct, kw_only=True):
    directories: list[AllowedDirectory]

    def __mcp_text__(self) -> str:
        lines = [d.path + (" (read-only)" if d.readOnly else "") for d in self.directories]
        return "Allowed directories:\n" + "\n".join(lines)

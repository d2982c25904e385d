"""The `fs` service: files under configured roots, with the reference filesystem server's tool
names and argument shapes, plus grep_files, copy_file, delete_file and offset/limit reads.

Every path goes through `Roots` (paths.py). The methods of `Filesystem` are the tools, directly testable;
their docstrings are the tool descriptions. Failures the model can act on are ToolError
(an isError result naming the path and the reason), never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from typing import Annotated, Final, Literal

from msgspec import Meta

from schemas.mcp import AudioContent, EmbeddedResource, ImageContent

from ...errors import ToolError
from . import files, listing, tree
from .edit import Edit, apply_edits, unified_diff
from .grep import GrepLimits, GrepQuery, grep
from .media import content_block
from .outputs import (
    AllowedDirectories,
    AllowedDirectory,
    DirectoryTree,
    EditOutput,
    FileInfo,
    FileText,
    GrepOutput,
    Listing,
    MultiReadOutput,
    ReadOutput,
    SearchOutput,
    SizedListing,
    TextOutput,
)
from .paths import Roots, printable, shown

VERSION: Final = "0.2.0"

Lines = Annotated[int, Meta(ge=0)]
Patterns = Annotated[
    tuple[str, ...], Meta(max_length=100, description="Glob patterns (minimatch, dot files included)")
]


@contextlib.contextmanager
def _os_errors(path: str) -> Iterator[None]:
    """OSError from the filesystem becomes a ToolError naming the path."""
    try:
        yield
    except OSError as exc:
        raise ToolError(f"{shown(path)}: {exc.strerror or exc}") from None


def _note(text: str) -> str:
    return f"\n[{text}]"


class Filesystem:
    """The tool implementations over one set of roots; plain methods, directly testable."""

    def __init__(
        self,
        roots: Roots,
        max_read_bytes: int,
        *,
        walk_seconds: float = 10.0,
        grep_seconds: float = 10.0,
        max_walk_entries: int = 100_000,
    ) -> None:
        self.roots = roots
        self.cap = max_read_bytes
        self.walk_seconds = walk_seconds
        self.max_walk_entries = max_walk_entries
        self.grep_limits = GrepLimits(
            seconds=grep_seconds, walk_seconds=walk_seconds, max_entries=max_walk_entries, cap=max_read_bytes
        )

    # -- reading ------------------------------------------------------------------------------

    def read_text_file(
        self,
        path: str,
        head: Annotated[
            Lines | None, Meta(description="If provided, returns only the first N lines of the file")
        ] = None,
        tail: Annotated[
            Lines | None, Meta(description="If provided, returns only the last N lines of the file")
        ] = None,
        offset: Annotated[
            Lines | None, Meta(description="Lines to skip before reading (0 = from the first line)")
        ] = None,
        limit: Annotated[Lines | None, Meta(description="Read at most this many lines (from offset)")] = None,
    ) -> ReadOutput:
        """Read a file as UTF-8 text, whatever its extension. `head` returns only the first N lines,
        `tail` only the last N; `offset`/`limit` read a range of lines (0-based offset). Give head, tail
        or offset/limit, not two of them. A read stops at the fs byte cap and says so, with the offset
        to continue from. Only works within allowed directories."""
        if sum(x is not None for x in (head, tail)) + (offset is not None or limit is not None) > 1:
            raise ToolError("give head, tail, or offset/limit: not two of them together")
        real = self.roots.resolve(path)
        with _os_errors(path):
            if tail is not None:
                lines, cut = files.tail_lines(real, tail, self.cap)
                text = b"".join(lines).decode("utf-8", "replace")
                if cut:
                    text += _note(
                        f"truncated at the fs read cap ({self.cap} bytes): fewer than {tail} lines shown"
                    )
                return ReadOutput(content=text, truncated=cut)
            start = offset or 0
            got = files.read_lines(real, start, head if head is not None else limit, self.cap)
        text = got.data.decode("utf-8", "replace")
        if got.past_end:
            text += _note(f"offset {start} is at or past the end of the file")
        elif got.truncated and got.count == 1 and not got.data.endswith(b"\n"):
            text += _note(
                f"line {start + 1} is longer than the fs read cap ({self.cap} bytes) and was cut; continue with offset={got.next_offset}"
            )
        elif got.truncated:
            text += _note(
                f"truncated at the fs read cap ({self.cap} bytes); continue with offset={got.next_offset}"
            )
        # head keeps the reference server's result shape; a continuation offset only when the cap cut it
        nxt = got.next_offset if head is None or got.truncated else None
        return ReadOutput(
            content=text, truncated=got.truncated, **({} if nxt is None else {"nextOffset": nxt})
        )

    def read_media_file(self, path: str) -> list[ImageContent | AudioContent | EmbeddedResource]:
        """Read an image or audio file. Returns the base64 encoded data and MIME type (other files come
        back as an embedded resource blob). Files larger than the fs read cap are refused.
        Only works within allowed directories."""
        real = self.roots.resolve(path)
        with _os_errors(path):
            data = files.read_whole(real, self.cap)
        return [content_block(real, data)]

    def read_multiple_files(
        self,
        paths: Annotated[
            list[str],
            Meta(
                min_length=1,
                max_length=100,
                description="Array of file paths to read. Each path must be a string pointing to a valid file within allowed directories.",
            ),
        ],
    ) -> MultiReadOutput:
        """Read the contents of multiple files simultaneously. This is more efficient than reading
        files one by one when you need to analyze or compare multiple files. Each file's content is
        returned with its path as a reference. Failed reads for individual files won't stop the entire
        operation. The fs read cap applies to all the files together. Only works within allowed directories."""
        out: list[FileText] = []
        left = self.cap
        for p in paths:
            name = printable(p)
            if left <= 0:
                out.append(
                    FileText(
                        path=name,
                        error=f"not read: the fs read cap ({self.cap} bytes) is used up by the files before it; read it separately",
                    )
                )
                continue
            try:
                real = self.roots.resolve(p)
                with _os_errors(p):
                    got = files.read_lines(real, 0, None, left)
            except ToolError as exc:
                out.append(FileText(path=name, error=str(exc)))
                continue
            left -= len(got.data)
            text = got.data.decode("utf-8", "replace")
            if got.truncated:
                text += _note(
                    f"truncated at the fs read cap; read it with read_text_file offset={got.next_offset}"
                )
            out.append(FileText(path=name, content=text, truncated=got.truncated))
        return MultiReadOutput(files=out)

    # -- writing ------------------------------------------------------------------------------

    def write_file(self, path: str, content: str) -> TextOutput:
        """Create a new file or completely overwrite an existing file with new content (UTF-8).
        Use with caution as it will overwrite existing files without warning. Atomic: readers never
        see half a file. Only works within allowed directories (read-write ones)."""
        real = self.roots.resolve(path, write=True, must_exist=False)
        if real.is_dir():
            raise ToolError(f"{shown(path)} is a directory")
        with _os_errors(path):
            files.write_atomic(real, content.encode("utf-8", errors="surrogatepass"))
        return TextOutput(content=f"Successfully wrote to {printable(path)}")

    def edit_file(
        self,
        path: str,
        edits: list[Edit],
        dryRun: Annotated[bool, Meta(description="Preview changes using git-style diff format")] = False,
    ) -> EditOutput:
        """Make line-based edits to a text file. Each edit replaces text matching oldText with newText:
        an exact match first, else a line-by-line match ignoring leading/trailing whitespace, in which
        case newText is re-indented to the file's indentation. Each oldText must match exactly one place.
        Returns a git-style diff showing the changes made; dryRun previews without writing.
        Only works within allowed directories (read-write ones)."""
        real = self.roots.resolve(path, write=True)
        with _os_errors(path):
            raw = files.read_whole(real, self.cap)
        try:
            original = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{shown(path)} is not UTF-8 text; edit_file edits UTF-8 files only") from None
        edited = apply_edits(original, edits)
        crlf = "\r\n" in original and original.count("\r\n") == original.count("\n")
        result = edited.replace("\n", "\r\n") if crlf else edited
        diff = unified_diff(original, edited, printable(str(real)))
        if not dryRun and result != original:
            with _os_errors(path):
                files.write_atomic(real, result.encode("utf-8"))
        return EditOutput(diff=diff, dryRun=dryRun)

    def create_directory(self, path: str) -> TextOutput:
        """Create a new directory or ensure a directory exists. Can create multiple nested directories
        in one operation. If the directory already exists, this operation will succeed silently.
        Only works within allowed directories (read-write ones)."""
        base, missing = self.roots.resolve_new_dirs(path)
        with _os_errors(path):
            files.make_dirs(base, missing)
        return TextOutput(content=f"Successfully created directory {printable(path)}")

    def move_file(self, source: str, destination: str) -> TextOutput:
        """Move or rename files and directories. Can move files between directories and rename them in
        a single operation. If the destination exists, the operation will fail. A symlink is moved
        itself, not its target. Both source and destination must be within allowed directories (read-write ones)."""
        src = self.roots.resolve_entry(source, write=True)
        dst = self.roots.resolve(destination, write=True, must_exist=False)
        if os.path.lexists(dst):
            raise ToolError(f"destination already exists: {shown(destination)}")
        try:
            files.rename_noreplace(src, dst)
        except FileExistsError:
            raise ToolError(f"destination already exists: {shown(destination)}") from None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise ToolError(f"{shown(source)} -> {shown(destination)}: {exc.strerror or exc}") from None
            if src.is_symlink() or not src.is_file():
                raise ToolError(
                    f"{shown(source)} is on another filesystem than the destination; only regular files move across filesystems"
                ) from None
            with _os_errors(source):
                files.copy_file(src, dst, overwrite=False)
                os.unlink(src)
        return TextOutput(content=f"Successfully moved {printable(source)} to {printable(destination)}")

    def copy_file(
        self,
        source: str,
        destination: str,
        overwrite: Annotated[bool, Meta(description="Replace the destination if it exists")] = False,
    ) -> TextOutput:
        """Copy a regular file. Fails if the destination exists unless overwrite is true; the copy is
        written beside the destination and renamed into place, so it never writes through a symlink.
        Both paths must be within allowed directories (the destination in a read-write one)."""
        src = self.roots.resolve(source)
        dst = self.roots.resolve(destination, write=True, must_exist=False)
        if src == dst:
            raise ToolError(f"{shown(source)} and {shown(destination)} are the same file")
        if dst.is_dir():
            raise ToolError(f"destination {shown(destination)} is a directory; give the new file's full path")
        if os.path.lexists(dst) and not overwrite:
            raise ToolError(
                f"destination already exists: {shown(destination)}; pass overwrite: true to replace it"
            )
        try:
            files.copy_file(src, dst, overwrite=overwrite)
        except FileExistsError:
            raise ToolError(
                f"destination already exists: {shown(destination)}; pass overwrite: true to replace it"
            ) from None
        except OSError as exc:
            raise ToolError(f"{shown(source)} -> {shown(destination)}: {exc.strerror or exc}") from None
        return TextOutput(content=f"Successfully copied {printable(source)} to {printable(destination)}")

    def delete_file(
        self,
        path: str,
        confirm: Annotated[bool, Meta(description="Must be true: deleting cannot be undone")] = False,
        recursive: Annotated[
            bool, Meta(description="Required to delete a directory and everything in it")
        ] = False,
    ) -> TextOutput:
        """Delete a file, a symlink (never its target), or with recursive: true a directory and all it
        contains. Requires confirm: true. An allowed directory itself is never deleted.
        Only works within allowed directories (read-write ones)."""
        if not confirm:
            raise ToolError(
                f"not deleted: {shown(path)}; delete_file needs confirm: true (deleting cannot be undone)"
            )
        entry = self.roots.resolve_entry(path, write=True)
        with _os_errors(path):
            if entry.is_dir() and not entry.is_symlink():
                if not recursive:
                    raise ToolError(
                        f"{shown(path)} is a directory; pass recursive: true to delete it and everything in it"
                    )
                shutil.rmtree(entry)
            else:
                os.unlink(entry)
        return TextOutput(content=f"Successfully deleted {printable(path)}")

    # -- listing and searching -----------------------------------------------------------------

    def list_directory(self, path: str) -> Listing:
        """Get a detailed listing of all files and directories in a specified path. Results clearly
        distinguish between files and directories with [FILE] and [DIR] prefixes, sorted by name.
        Only works within allowed directories."""
        real = self.roots.resolve(path)
        with _os_errors(path):
            try:
                return listing.list_dir(real, self.cap)
            except NotADirectoryError:
                raise ToolError(f"{shown(path)} is not a directory") from None

    def list_directory_with_sizes(
        self,
        path: str,
        sortBy: Annotated[Literal["name", "size"], Meta(description="Sort entries by name or size")] = "name",
    ) -> SizedListing:
        """Get a detailed listing of all files and directories in a specified path, including sizes,
        with totals. Results clearly distinguish between files and directories with [FILE] and [DIR]
        prefixes. Only works within allowed directories."""
        real = self.roots.resolve(path)
        with _os_errors(path):
            try:
                return listing.list_dir_sizes(self.roots, real, sortBy, self.cap)
            except NotADirectoryError:
                raise ToolError(f"{shown(path)} is not a directory") from None

    def directory_tree(self, path: str, excludePatterns: Patterns = ()) -> DirectoryTree:
        """Get a recursive tree view of files and directories as a JSON structure. Each entry includes
        'name', 'type' (file/directory), and 'children' for directories. Files have no children array,
        while directories always have a children array (which may be empty). Entries matching
        excludePatterns (a name like node_modules, or a glob) are left out. Large trees are cut and say
        so. Only works within allowed directories."""
        real = self.roots.resolve(path)
        if not real.is_dir():
            raise ToolError(f"{shown(path)} is not a directory")
        return tree.directory_tree(
            self.roots,
            real,
            list(excludePatterns),
            cap=self.cap,
            max_entries=self.max_walk_entries,
            seconds=self.walk_seconds,
        )

    def search_files(
        self,
        path: str,
        pattern: Annotated[
            str,
            Meta(
                min_length=1,
                description="Glob like '*.py' (any depth), 'src/**/*.ts', or a plain name fragment",
            ),
        ],
        excludePatterns: Patterns = (),
    ) -> SearchOutput:
        """Recursively search for files and directories whose names or relative paths match a glob
        pattern ('*.ext' matches at any depth, 'dir/**/*.ext' below dir; a pattern without wildcards
        matches names containing it, case-insensitively). Dot files are included. Searches names only,
        not contents (use grep_files for that). Returns full paths. Only searches within allowed directories."""
        real = self.roots.resolve(path)
        if not real.is_dir():
            raise ToolError(f"{shown(path)} is not a directory")
        return tree.search_files(
            self.roots,
            real,
            pattern,
            list(excludePatterns),
            cap=self.cap,
            max_entries=self.max_walk_entries,
            seconds=self.walk_seconds,
        )

    def grep_files(
        self,
        path: str,
        pattern: Annotated[
            str,
            Meta(
                min_length=1,
                max_length=1000,
                description="Python regular expression, or plain text with literal: true",
            ),
        ],
        literal: Annotated[bool, Meta(description="Treat pattern as plain text, not a regex")] = False,
        ignore_case: bool = False,
        include: Annotated[
            tuple[str, ...],
            Meta(
                max_length=100,
                description="Only files whose name or relative path matches one of these globs",
            ),
        ] = (),
        exclude: Patterns = (),
        max_results: Annotated[
            int, Meta(ge=1, le=1000, description="Stop after this many matching lines")
        ] = 100,
        context: Annotated[
            int, Meta(ge=0, le=10, description="Lines of context before and after each match")
        ] = 0,
    ) -> GrepOutput:
        """Search file contents for a regex (or plain text) below a directory, or in one file, and return
        matching lines as path:line:text (context lines as path-line-text). Skips binary files and files
        larger than the fs read cap; bounded by max_results and a time budget (a pathological regex is
        stopped, and says so). Only searches within allowed directories."""
        real = self.roots.resolve(path)
        q = GrepQuery(
            pattern=pattern,
            literal=literal,
            ignore_case=ignore_case,
            include=tuple(include),
            exclude=tuple(exclude),
            max_results=max_results,
            context=context,
        )
        with _os_errors(path):
            return grep(self.roots, real, q, self.grep_limits)

    def get_file_info(self, path: str) -> FileInfo:
        """Retrieve detailed metadata about a file or directory: size, creation time, last modified
        time, last access time, type and permissions (octal). Only works within allowed directories."""
        real = self.roots.resolve(path)
        with _os_errors(path):
            return listing.file_info(real)

    def list_allowed_directories(self) -> AllowedDirectories:
        """Returns the list of directories that this server is allowed to access, and which are
        read-only. Subdirectories within these allowed directories are also accessible."""
        return AllowedDirectories(
            directories=[
                AllowedDirectory(path=printable(r.path), readOnly=not r.writable) for r in self.roots.roots
            ]
        )

"""File bytes, safely: reads that open only regular files and stop at a byte cap, line ranges,
and writes that never follow a symlink planted at the target (exclusive create, else a
temporary file renamed over it; `rename_noreplace` when the target must not exist).

Functions here raise OSError (and ToolError for a file that is not a regular file); the
tools turn OSError into a sentence naming the path.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from ...errors import ToolError
from .paths import shown

_CHUNK = 64 * 1024
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


@contextlib.contextmanager
def open_regular(path: Path | str) -> Iterator[BinaryIO]:
    """Open a regular file for reading. A FIFO, device or directory is refused before any read
    (O_NONBLOCK so opening a FIFO cannot hang the worker)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ToolError(f"{shown(str(path))} is a directory; use list_directory")
        if not stat.S_ISREG(mode):
            raise ToolError(f"{shown(str(path))} is not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


@dataclass
class Lines:
    """A run of lines read from a file: the bytes, whether the cap cut it, where to continue."""

    data: bytes
    count: int
    """Lines in `data` (a partial last line counts)."""
    truncated: bool = False
    """The byte cap stopped the read before `limit` lines or the end of the file."""
    next_offset: int | None = None
    """The `offset` that continues after this run, when more of the file remains."""
    past_end: bool = False
    """`offset` is at or past the end of the file."""


def split_lines(buf: bytes) -> list[bytes]:
    """`buf` cut after each b"\\n" (only LF ends a line, as for offsets); endings kept."""
    parts = buf.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _skip_lines(f: BinaryIO, n: int) -> int:
    """Position `f` after its first `n` lines; return how many were skipped (fewer at EOF)."""
    skipped = 0
    while skipped < n:
        chunk = f.read(_CHUNK)
        if not chunk:
            return skipped
        count = chunk.count(b"\n")
        if skipped + count < n:
            skipped += count
            continue
        idx = -1
        while skipped < n:
            idx = chunk.index(b"\n", idx + 1)
            skipped += 1
        f.seek(idx + 1 - len(chunk), os.SEEK_CUR)
    return skipped


def _read_whole(path: Path | str, cap: int) -> tuple[bytes, bool] | None:
    """The hot path (a whole small file): one open, one fstat, one read sized by the file.
    None when the file is bigger than `cap`, so the caller takes the careful path."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{shown(str(path))} is a directory; use list_directory")
        if not stat.S_ISREG(st.st_mode):
            raise ToolError(f"{shown(str(path))} is not a regular file")
        if st.st_size >= cap:
            return None
        data = os.read(fd, st.st_size + 1)  # +1: notices a file that grew since the fstat
        if len(data) > st.st_size:
            return None
        return data, False
    finally:
        os.close(fd)


def read_lines(path: Path, offset: int, limit: int | None, cap: int) -> Lines:
    """Lines `offset` (0-based, lines skipped) onwards, at most `limit` of them and `cap` bytes.

    When the cap cuts the read, the last partial line is dropped (unless it is the only one) so
    `next_offset` continues at a line boundary.
    """
    if offset == 0 and limit is None:
        whole = _read_whole(path, cap)
        if whole is not None:
            data = whole[0]
            return Lines(data, data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0))
    with open_regular(path) as f:
        skipped = _skip_lines(f, offset)
        buf = f.read(cap)
        more = bool(f.read(1))
    if skipped < offset or (offset and not buf and not more):
        return Lines(b"", 0, past_end=True, next_offset=None)
    lines = split_lines(buf)
    if limit is not None and len(lines) > limit:
        return Lines(b"".join(lines[:limit]), limit, next_offset=offset + limit)
    if not more:
        return Lines(buf, len(lines))
    if limit is not None and len(lines) == limit and lines[-1].endswith(b"\n"):
        return Lines(buf, limit, next_offset=offset + limit)
    # the cap cut the read: end at a line boundary unless one line alone is longer than the cap
    if len(lines) > 1 and not lines[-1].endswith(b"\n"):
        lines.pop()
    complete = sum(1 for x in lines if x.endswith(b"\n"))
    return Lines(b"".join(lines), len(lines), truncated=True, next_offset=offset + max(complete, 1))


def tail_lines(path: Path, n: int, cap: int) -> tuple[list[bytes], bool]:
    """The last `n` lines, read backwards in chunks; True when the byte cap stopped it first."""
    if n <= 0:
        return [], False
    with open_regular(path) as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        buf = b""
        while pos > 0 and buf.count(b"\n") <= n and len(buf) < cap:
            step = min(_CHUNK, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
    lines = split_lines(buf)
    if lines and pos > 0:
        lines = lines[1:]  # the first one may be partial
    lines = lines[-n:]
    truncated = False
    total = sum(len(x) for x in lines)
    while lines and total > cap:
        total -= len(lines.pop(0))
        truncated = True
    return lines, truncated


def read_whole(path: Path, cap: int) -> bytes:
    """The whole file, or ToolError when it is larger than `cap` (for tools that cannot work on a part)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > cap:
            raise ToolError(f"{shown(str(path))} is {size} bytes, more than the fs read cap ({cap} bytes)")
        data = f.read(cap + 1)
    if len(data) > cap:
        raise ToolError(f"{shown(str(path))} grew past the fs read cap ({cap} bytes) while being read")
    return data


def _temp_beside(path: Path, mode: int) -> tuple[Path, int]:
    tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    return tmp, fd


def _existing_mode(path: Path) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0o644
    return 0o644 if stat.S_ISLNK(st.st_mode) else st.st_mode & 0o7777


def write_atomic(path: Path, data: bytes) -> None:
    """Create `path` exclusively, or replace it by renaming a temporary file over it.

    Neither step follows a symlink planted at `path`: O_EXCL refuses any existing entry, and
    rename replaces the directory entry itself rather than writing through it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    tmp, fd = _temp_beside(path, _existing_mode(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_file(source: Path, dest: Path, *, overwrite: bool) -> None:
    """Copy a regular file to `dest` through a temporary file beside it, then rename it into place:
    over whatever is there when `overwrite`, else only if nothing is (FileExistsError)."""
    with open_regular(source) as src:
        mode = os.fstat(src.fileno()).st_mode & 0o777
        tmp, fd = _temp_beside(dest, mode)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(1024 * 1024):
                    out.write(chunk)
            if overwrite:
                os.replace(tmp, dest)
            else:
                rename_noreplace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """glibc's renameat2, when this libc has it (Linux, glibc 2.28+)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, bytes, int, bytes, int], int], fn)


_RENAMEAT2 = _renameat2()


def rename_noreplace(source: Path | str, dest: Path | str) -> None:
    """Rename `source` to `dest`, failing with FileExistsError if `dest` exists (even as a dangling symlink).

    Atomic where the kernel offers renameat2(RENAME_NOREPLACE); otherwise a check then a rename,
    which can still never write through a symlink (rename replaces the entry, it does not follow it).
    """
    if _RENAMEAT2 is not None:
        rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(dest), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(dest))
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest))
    os.rename(source, dest)


def make_dirs(base: Path, names: list[str]) -> None:
    """Create `names` one below the other under the existing directory `base` (mkdir -p).

    Each step works relative to an open directory descriptor and refuses to follow a symlink
    planted in the meantime, so the chain cannot be diverted outside `base`.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(base, flags)
    try:
        for name in names:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=fd)
            nxt = os.open(name, flags | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)

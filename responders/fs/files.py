"""Reading and writing file bytes safely: capped reads, head/tail by lines, writes that never follow a planted symlink."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_CHUNK = 64 * 1024


def read_capped(path: Path, cap: int) -> tuple[bytes, int]:
    """Up to `cap` bytes from the start, and the file's size."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return f.read(cap), size


def head_lines(path: Path, n: int, cap: int) -> tuple[list[bytes], bool]:
    """The first `n` lines (keeping their endings); True when the byte cap stopped it first."""
    out: list[bytes] = []
    used = 0
    with open(path, "rb") as f:
        for line in f:
            if len(out) >= n:
                break
            if used + len(line) > cap:
                out.append(line[: cap - used])
                return out, True
            out.append(line)
            used += len(line)
    return out, False


def tail_lines(path: Path, n: int, cap: int) -> tuple[list[bytes], bool]:
    """The last `n` lines, read backwards in chunks; True when the byte cap stopped it first."""
    if n <= 0:
        return [], False
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        buf = b""
        while pos > 0 and buf.count(b"\n") <= n and len(buf) < cap:
            step = min(_CHUNK, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
    lines = buf.splitlines(keepends=True)
    if lines and pos > 0:
        lines = lines[1:]  # the first one may be partial
    lines = lines[-n:]
    truncated = False
    total = sum(len(x) for x in lines)
    while lines and total > cap:
        total -= len(lines.pop(0))
        truncated = True
    return lines, truncated


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
    mode = 0o644
    try:
        st = os.lstat(path)
        if not os.path.islink(path):
            mode = st.st_mode & 0o7777
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

"""One directory's entries (list_directory, list_directory_with_sizes) and one entry's metadata (get_file_info).

Sizes are read only for entries whose real path is inside the roots: a symlink pointing out is
listed by name (it is inside) but never stat'ed through.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Literal

from msgspec import UNSET

from .outputs import DirEntry, FileInfo, Listing, SizedListing
from .paths import Roots, printable

MAX_LIST_ENTRIES = 100_000


def _scan(real: Path) -> tuple[list[os.DirEntry[str]], bool]:
    """Up to MAX_LIST_ENTRIES entries, and whether there were more."""
    with os.scandir(real) as it:
        out: list[os.DirEntry[str]] = []
        for e in it:
            if len(out) >= MAX_LIST_ENTRIES:
                return out, True
            out.append(e)
        return out, False


def _kind(e: os.DirEntry[str]) -> Literal["file", "directory"]:
    try:
        return "directory" if e.is_dir() else "file"
    except OSError:
        return "file"


def list_dir(real: Path, cap: int) -> Listing:
    """Entries sorted by name; cut when the text would pass `cap` bytes."""
    entries = []
    used = 0
    scanned, truncated = _scan(real)
    for e in sorted(scanned, key=lambda x: x.name):
        name = printable(e.name)
        used += 2 * len(name) + 40  # a text line and a structured entry
        if used > cap:
            truncated = True
            break
        entries.append(DirEntry(name=name, type=_kind(e)))
    return Listing(path=printable(str(real)), entries=entries, truncated=truncated)


def _size(roots: Roots, e: os.DirEntry[str]) -> int:
    try:
        if e.is_symlink():
            target = os.path.realpath(e.path, strict=True)
            if not roots.inside(target):
                return 0
            return os.stat(target).st_size
        return e.stat(follow_symlinks=False).st_size
    except OSError:
        return 0


def _bytes(r: DirEntry) -> int:
    return r.size if isinstance(r.size, int) else 0


def list_dir_sizes(roots: Roots, real: Path, sort_by: Literal["name", "size"], cap: int) -> SizedListing:
    """Entries with file sizes, sorted by name (case-insensitive first) or by size (largest first), and totals."""
    rows = []
    scanned, cut = _scan(real)
    for e in scanned:
        kind = _kind(e)
        rows.append(
            DirEntry(
                name=printable(e.name), type=kind, size=UNSET if kind == "directory" else _size(roots, e)
            )
        )
    total_files = sum(1 for r in rows if r.type == "file")
    total_size = sum(_bytes(r) for r in rows)
    if sort_by == "size":
        rows.sort(key=lambda r: (-_bytes(r), r.name))
    else:
        rows.sort(key=lambda r: (r.name.casefold(), r.name))
    used = 0
    shown = []
    for r in rows:
        used += 2 * len(r.name) + 100
        if used > cap:
            break
        shown.append(r)
    return SizedListing(
        path=printable(str(real)),
        entries=shown,
        totalFiles=total_files,
        totalDirectories=len(rows) - total_files,
        totalSize=total_size,
        truncated=cut or len(shown) < len(rows),
    )


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def file_info(real: Path) -> FileInfo:
    st = os.stat(real)
    return FileInfo(
        size=st.st_size,
        created=_iso(getattr(st, "st_birthtime", st.st_ctime)),
        modified=_iso(st.st_mtime),
        accessed=_iso(st.st_atime),
        isDirectory=stat.S_ISDIR(st.st_mode),
        isFile=stat.S_ISREG(st.st_mode),
        permissions=oct(st.st_mode & 0o777)[2:],
    )

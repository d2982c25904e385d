"""What `index_paths` reads: text files under the fs roots, cut into chunks, compared with what the index has.

Paths go through the fs service's `Roots` (no escape through `..` or symlinks: a given path that
resolves outside is refused, a symlink met during the walk that leads outside is skipped) and its
bounded `Walk`. A file whose (mtime_ns, size) matches the index's record is left alone; a file the
index had under a walked directory that is gone now is reported as removed. Runs in a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..fs import Excluder, NameOrPathGlob, Roots, Walk
from .backend import FileChunks
from .outputs import Document

SNIFF = 8192


@dataclass
class Plan:
    changed: list[FileChunks] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def chunk_text(text: str, size: int) -> list[tuple[str, int, int]]:
    """`text` cut on line boundaries into pieces of about `size` characters: (piece, first line, last line), 1-based."""
    out: list[tuple[str, int, int]] = []
    buf: list[str] = []
    length = 0
    start = 1
    line_no = 0
    for line_no, line in enumerate(text.splitlines(keepends=True), 1):
        while len(line) > size:  # one very long line: cut it hard
            if buf:
                out.append(("".join(buf), start, line_no - 1 if line_no > start else line_no))
                buf, length = [], 0
            out.append((line[:size], line_no, line_no))
            line = line[size:]
            start = line_no
        if buf and length + len(line) > size:
            out.append(("".join(buf), start, line_no - 1))
            buf, length, start = [], 0, line_no
        if not buf:
            start = line_no
        buf.append(line)
        length += len(line)
    if buf and "".join(buf).strip():
        out.append(("".join(buf), start, line_no))
    return out


def _read_text(path: str, max_bytes: int) -> tuple[str | None, str | None]:
    """(text, None), or (None, why it was skipped)."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if len(data) > max_bytes:
        return None, f"larger than {max_bytes} bytes"
    if b"\x00" in data[:SNIFF]:
        return None, "binary"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"


class Crawler:
    """Plans one `index_paths` call (see the module docstring)."""

    def __init__(
        self,
        roots: Roots,
        *,
        chunk_chars: int,
        max_file_bytes: int,
        max_files: int,
        walk_seconds: float = 30.0,
    ) -> None:
        self.roots = roots
        self.chunk_chars = chunk_chars
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.walk_seconds = walk_seconds

    def resolve(self, paths: list[str]) -> list[Path]:
        """The real paths of `paths`; PathRefused for one outside the roots (through `..` or a symlink)."""
        return [self.roots.resolve(p) for p in paths]

    def plan(
        self, starts: list[Path], include: list[str], exclude: list[str], known: dict[str, tuple[int, int]]
    ) -> Plan:
        plan = Plan()
        includes = [NameOrPathGlob(p) for p in include]
        excluder = Excluder(exclude)
        seen: set[str] = set()
        complete = True
        walked_dirs: list[str] = []
        for start in starts:
            if start.is_dir():
                walked_dirs.append(str(start))
                walk = Walk(self.roots, start, exclude=excluder, seconds=self.walk_seconds)
                for e in walk:
                    if not e.is_file or (includes and not any(g.match(e.rel, e.name) for g in includes)):
                        continue
                    if len(seen) >= self.max_files:
                        plan.skipped.append(
                            f"stopped after {self.max_files} files; index the rest with another call"
                        )
                        complete = False
                        break
                    seen.add(e.path)
                    self._file(e.path, known, plan)
                plan.skipped.extend(walk.notes())
                complete = complete and walk.stopped is None
            elif start.is_file():
                seen.add(str(start))
                self._file(str(start), known, plan)
        if complete:
            for path in known:
                if path in seen or os.path.isfile(path):
                    continue
                if any(path.startswith(d.rstrip(os.sep) + os.sep) for d in walked_dirs) or any(
                    path == str(s) for s in starts
                ):
                    plan.removed.append(path)
        return plan

    def _file(self, path: str, known: dict[str, tuple[int, int]], plan: Plan) -> None:
        try:
            st = os.stat(path)
        except OSError as exc:
            plan.skipped.append(f"{path}: unreadable ({exc.strerror or exc})")
            return
        if known.get(path) == (st.st_mtime_ns, st.st_size):
            plan.unchanged += 1
            return
        text, why = _read_text(path, self.max_file_bytes)
        if text is None:
            plan.skipped.append(f"{path}: {why}")
            return
        name = os.path.basename(path)
        docs = [
            Document(
                id=f"{path}#{i}", title=name, text=piece, metadata={"path": path, "chunk": i, "lines": [a, b]}
            )
            for i, (piece, a, b) in enumerate(chunk_text(text, self.chunk_chars))
        ]
        plan.changed.append(FileChunks(path=path, mtime_ns=st.st_mtime_ns, size=st.st_size, docs=docs))

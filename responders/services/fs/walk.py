"""A bounded, breadth-first walk below one directory that never leaves the roots.

Each entry is checked: a symlink is followed only when its real path stays inside a root
(an entry pointing out is skipped and counted, never listed or read), a symlinked directory
is entered only when it leads somewhere the walk would not reach anyway, and no directory is
entered twice (symlink cycles). The walk stops after `max_entries` entries or `seconds`
(whichever comes first) and says which, so a huge tree costs a bounded amount of work.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .globs import Excluder
from .paths import Roots

WALK_SECONDS = 10.0
MAX_WALK_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class Entry:
    rel: str
    """Relative to the walk's start, '/'-separated."""
    name: str
    path: str
    """The real path (what to open)."""
    shown: str
    """The path as the walk reached it: the start's real path joined with `rel`."""
    is_dir: bool
    is_file: bool
    parent: str
    """`rel` of the directory holding it ('' at the top)."""


class Walk:
    """Iterate the entries below `start` (a real directory path), parents before children, names sorted."""

    def __init__(
        self,
        roots: Roots,
        start: Path,
        *,
        exclude: Excluder | None = None,
        max_entries: int = MAX_WALK_ENTRIES,
        seconds: float = WALK_SECONDS,
    ) -> None:
        self.roots = roots
        self.start = str(start)
        self.exclude = exclude
        self.max_entries = max_entries
        self.seconds = seconds
        self.visited = 0
        self.skipped_outside = 0
        self.unreadable = 0
        self.stopped: str | None = None
        """Why the walk ended early, as a sentence; None when it covered everything."""

    def _within_start(self, real: str) -> bool:
        return real == self.start or real.startswith(self.start.rstrip(os.sep) + os.sep)

    def __iter__(self) -> Iterator[Entry]:
        deadline = time.monotonic() + self.seconds
        seen = {self.start}
        queue: deque[tuple[str, str]] = deque([("", self.start)])
        while queue:
            rel_dir, real_dir = queue.popleft()
            room = self.max_entries - self.visited
            try:
                with os.scandir(real_dir) as it:
                    items = sorted(itertools.islice(it, room + 1), key=lambda e: e.name)
            except OSError:
                self.unreadable += 1
                continue
            for e in items:
                if self.visited >= self.max_entries:
                    self.stopped = (
                        f"stopped after {self.max_entries} entries; narrow the path or add excludePatterns"
                    )
                    return
                if time.monotonic() > deadline:
                    self.stopped = f"stopped after {self.seconds:g} s; narrow the path or add excludePatterns"
                    return
                self.visited += 1
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                if self.exclude and self.exclude.excluded(rel):
                    continue
                try:
                    if e.is_symlink():
                        real = os.path.realpath(e.path, strict=True)
                        if not self.roots.inside(real):
                            self.skipped_outside += 1
                            continue
                        is_dir = os.path.isdir(real)
                        is_file = not is_dir and os.path.isfile(real)
                        enter = is_dir and real not in seen and not self._within_start(real)
                    else:
                        real = e.path
                        is_dir = e.is_dir(follow_symlinks=False)
                        is_file = not is_dir and e.is_file(follow_symlinks=False)
                        enter = is_dir and real not in seen
                except OSError:  # dangling or looping symlink, vanished entry, permission
                    self.unreadable += 1
                    continue
                if enter:
                    seen.add(real)
                    queue.append((rel, real))
                yield Entry(
                    rel=rel,
                    name=e.name,
                    path=real,
                    shown=os.path.join(self.start, rel),
                    is_dir=is_dir,
                    is_file=is_file,
                    parent=rel_dir,
                )

    def notes(self) -> list[str]:
        """Sentences about what the walk left out, for the human-readable result."""
        out = []
        if self.stopped:
            out.append(self.stopped)
        if self.skipped_outside:
            out.append(f"{self.skipped_outside} symlink(s) leading outside the allowed directories skipped")
        if self.unreadable:
            out.append(f"{self.unreadable} unreadable entr{'y' if self.unreadable == 1 else 'ies'} skipped")
        return out

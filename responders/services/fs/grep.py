"""grep_files: content search below a directory (or in one file), bounded in results, bytes and time.

The walk (walk.py) picks the files, every one checked against the roots; the matching runs in
a short-lived child process (grepworker.py) that is killed when the time budget runs out, so
a catastrophic regex costs at most that budget and never blocks the responder's event loop.
Owns the child: it is gone when `grep` returns, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ToolError
from .globs import Excluder, NameOrPathGlob
from .outputs import GrepMatch, GrepOutput
from .paths import Roots, printable
from .walk import Walk

WORKER = Path(__file__).with_name("grepworker.py")
MAX_RESULTS = 1000
MAX_CONTEXT = 10
MAX_LINE = 400


@dataclass(frozen=True)
class GrepLimits:
    seconds: float = 10.0
    """Time budget of the matching process."""
    walk_seconds: float = 10.0
    max_entries: int = 100_000
    cap: int = 1024 * 1024
    """Files larger than this are skipped; the reply carries at most about this many bytes of text."""


@dataclass(frozen=True)
class GrepQuery:
    pattern: str
    literal: bool = False
    ignore_case: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_results: int = 100
    context: int = 0


def _check(q: GrepQuery) -> None:
    if not q.pattern:
        raise ToolError("pattern is empty")
    if len(q.pattern) > 1000:
        raise ToolError("pattern is longer than 1000 characters")
    if not 1 <= q.max_results <= MAX_RESULTS:
        raise ToolError(f"max_results must be between 1 and {MAX_RESULTS}")
    if not 0 <= q.context <= MAX_CONTEXT:
        raise ToolError(f"context must be between 0 and {MAX_CONTEXT}")
    if not q.literal:
        try:
            re.compile(q.pattern, re.IGNORECASE if q.ignore_case else 0)
        except re.error as exc:
            raise ToolError(
                f"pattern is not a valid regular expression ({exc}); pass literal: true to search for the text as is"
            ) from None
        except (OverflowError, RecursionError):
            raise ToolError("pattern is too complex to compile") from None


def _files(
    roots: Roots, start: Path, q: GrepQuery, limits: GrepLimits
) -> tuple[list[list[str]], Walk | None]:
    if not start.is_dir():
        return [[str(start), str(start)]], None
    include = [NameOrPathGlob(p) for p in q.include if p.strip()]
    walk = Walk(
        roots,
        start,
        exclude=Excluder(list(q.exclude)),
        max_entries=limits.max_entries,
        seconds=limits.walk_seconds,
    )
    files = [
        [e.shown, e.path]
        for e in walk
        if e.is_file and (not include or any(g.match(e.rel, e.name) for g in include))
    ]
    return files, walk


def grep(roots: Roots, start: Path, q: GrepQuery, limits: GrepLimits) -> GrepOutput:
    """Search the files below `start` (a real path already resolved through the roots)."""
    _check(q)
    files, walk = _files(roots, start, q, limits)
    request = {
        "pattern": q.pattern,
        "literal": q.literal,
        "ignore_case": q.ignore_case,
        "files": files,
        "max_results": q.max_results,
        "context": q.context,
        "max_line": MAX_LINE,
        "max_bytes": limits.cap,
        "cap": limits.cap,
        "seconds": limits.seconds,
    }
    events, timed_out = _run_worker(request, limits.seconds)
    matches: list[GrepMatch] = []
    skipped: dict[str, int] = {}
    stop: str | None = None
    searched = 0
    for ev in events:
        if "m" in ev:
            m = ev["m"]
            matches.append(
                GrepMatch(
                    path=printable(m["path"]),
                    line=m["line"],
                    text=m["text"],
                    before=m["before"],
                    after=m["after"],
                )
            )
        elif "skip" in ev:
            skipped[ev["skip"]] = skipped.get(ev["skip"], 0) + 1
        elif "stop" in ev:
            stop = ev["stop"]
        elif "done" in ev:
            searched = ev["done"]
    notes = [] if walk is None else walk.notes()
    if timed_out:
        notes.append(
            f"search stopped after {limits.seconds:g} s: the pattern is too slow on this input or there is too much to search; simplify the pattern or narrow the path"
        )
    if stop == "results":
        notes.append(f"stopped at max_results ({q.max_results}); there may be more matches")
    elif stop == "bytes":
        notes.append(f"stopped at the fs read cap ({limits.cap} bytes of matched text); narrow the search")
    reasons = {"binary": "binary", "large": f"larger than {limits.cap} bytes", "unreadable": "unreadable"}
    notes += [f"{n} {reasons[k]} file(s) skipped" for k, n in sorted(skipped.items()) if k in reasons]
    truncated = bool(timed_out or stop or (walk is not None and walk.stopped))
    return GrepOutput(matches=matches, filesSearched=searched, truncated=truncated, notes=notes)


def _run_worker(request: dict[str, Any], seconds: float) -> tuple[list[dict[str, Any]], bool]:
    """The worker's events, and whether the time budget ended it. The child never outlives this call."""
    deadline = time.monotonic() + seconds
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    events: list[dict[str, Any]] = []
    timed_out = False
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            with proc.stdin:
                proc.stdin.write(json.dumps(request).encode())
        except BrokenPipeError:
            pass  # the worker died early; its missing "done" says so below
        fd = proc.stdout.fileno()
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                events += [json.loads(line) for line in lines if line]
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    if not timed_out and not any("done" in e for e in events):
        if proc.returncode is not None and proc.returncode < 0:
            timed_out = True  # the worker's own alarm fired first
        else:
            raise ToolError("the search process failed; try a simpler pattern")
    return events, timed_out

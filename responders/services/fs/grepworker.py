"""The grep matcher, run as its own process (`python -I -S grepworker.py`) so that a regex with
catastrophic backtracking can be stopped: CPython's `re` holds the GIL for a whole match, so
a thread with a deadline would freeze the responder instead.

Standard library only (it runs without site-packages). Reads one JSON request on stdin:

    {"pattern", "ignore_case", "literal", "files": [[shown, real], ...], "max_results",
     "context", "max_line", "max_bytes", "cap", "seconds"}

and writes JSON lines on stdout: `{"m": {path, line, text, before, after}}` per matching line,
`{"skip": reason}` per file left out (binary, large, unreadable), `{"stop": reason}` when a
bound ended the search, and `{"done": files_searched}` last. `signal.alarm(seconds)` with the
default action ends the process even in the middle of a match; the parent also kills it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys
from typing import Any

_BINARY_PROBE = 8192


def clip(line: str, max_line: int, at: int = 0) -> str:
    """`line` shortened to about `max_line` characters, keeping position `at` (the match) in view."""
    if len(line) <= max_line:
        return line
    start = max(0, min(at - max_line // 4, len(line) - max_line))
    return (
        ("…" if start else "")
        + line[start : start + max_line]
        + ("…" if start + max_line < len(line) else "")
    )


def read_text(real: str, cap: int) -> tuple[str | None, str | None]:
    """(text, None) or (None, why it is skipped). Opens without following a symlink swapped in since the walk."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None, "unreadable"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "unreadable"
        if st.st_size > cap:
            return None, "large"
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(cap + 1)
    except OSError:
        return None, "unreadable"
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > cap:
        return None, "large"
    if b"\0" in data[:_BINARY_PROBE]:
        return None, "binary"
    return data.decode("utf-8", "replace"), None


def search_file(
    text: str, rx: re.Pattern[str], room: int, context: int, max_line: int, literal: str | None
) -> list[dict[str, Any]]:
    """Up to `room` matching lines of one file, each with its context (context never repeats a match)."""
    if literal is not None and literal not in text:
        return []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [x[:-1] if x.endswith("\r") else x for x in lines]
    hits: list[tuple[int, int]] = []
    for i, line in enumerate(lines):
        m = rx.search(line)
        if m is not None:
            hits.append((i, m.start()))
            if len(hits) >= room:
                break
    out = []
    for k, (i, at) in enumerate(hits):
        lo = max(0, i - context, hits[k - 1][0] + 1 if k else 0)
        hi = min(len(lines), i + 1 + context, hits[k + 1][0] if k + 1 < len(hits) else len(lines))
        out.append(
            {
                "line": i + 1,
                "text": clip(lines[i], max_line, at),
                "before": [clip(x, max_line) for x in lines[lo:i]],
                "after": [clip(x, max_line) for x in lines[i + 1 : hi]],
            }
        )
    return out


def run(req: dict[str, Any], emit: Any) -> None:
    flags = re.IGNORECASE if req["ignore_case"] else 0
    pattern: str = req["pattern"]
    rx = re.compile(re.escape(pattern) if req["literal"] else pattern, flags)
    literal = pattern if req["literal"] and not req["ignore_case"] else None
    found = 0
    used = 0
    searched = 0
    for shown, real in req["files"]:
        text, skip = read_text(real, req["cap"])
        if text is None:
            emit({"skip": skip})
            continue
        searched += 1
        for m in search_file(text, rx, req["max_results"] - found, req["context"], req["max_line"], literal):
            m["path"] = shown
            used += len(m["text"]) + sum(len(x) for x in m["before"]) + sum(len(x) for x in m["after"])
            if used > req["max_bytes"]:
                emit({"stop": "bytes"})
                emit({"done": searched})
                return
            emit({"m": m})
            found += 1
        if found >= req["max_results"]:
            emit({"stop": "results"})
            break
    emit({"done": searched})


def main() -> None:
    signal.alarm(60)  # until the request says how long; the parent kills us sooner anyway
    req = json.loads(sys.stdin.buffer.read())
    signal.alarm(max(1, int(req["seconds"] + 0.999)))
    out = sys.stdout

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")

    run(req, emit)
    out.flush()


if __name__ == "__main__":
    main()

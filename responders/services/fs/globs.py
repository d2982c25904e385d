"""Glob patterns as the reference server's minimatch reads them with `dot: true`, matched without regexes.

`*` and `?` stay within one path segment, `**` as a whole segment spans any number of them
(zero included), `[abc]` / `[!a-z]` are classes, `{a,b}` alternatives, `\\` escapes, and
leading dots are matched like any other character. Each segment becomes a regex whose stars
cannot backtrack into each other (the trick CPython's fnmatch uses), and `**` is matched by
advancing a set of positions segment by segment: never exponential, so a hostile pattern
cannot stall a walk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import ToolError

MAX_PATTERN = 1000
MAX_ALTERNATIVES = 256
_STAR = object()
_ANY = object()
_GLOBSTAR = "**"
_META = frozenset("*?[{")


@dataclass(frozen=True)
class _Class:
    ranges: tuple[tuple[str, str], ...]
    negated: bool


_Token = str | object | _Class


def has_magic(pattern: str) -> bool:
    return any(c in _META for c in pattern)


def expand_braces(pattern: str) -> list[str]:
    """`a{b,c}d` -> [`abd`, `acd`], nested too; a brace without a comma stays literal. Bounded."""
    out: list[str] = []
    todo = [pattern]
    while todo:
        p = todo.pop()
        span = _first_brace(p)
        if span is None:
            out.append(p)
        else:
            start, end, parts = span
            todo.extend(p[:start] + part + p[end + 1 :] for part in reversed(parts))
        if len(out) + len(todo) > MAX_ALTERNATIVES:
            raise ToolError(
                f"the pattern {pattern[:100]!r} expands to more than {MAX_ALTERNATIVES} alternatives"
            )
    return out


def _first_brace(p: str) -> tuple[int, int, list[str]] | None:
    """The first `{...}` group with a top-level comma: (start, end, alternatives)."""
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth, j, commas = 0, i, []
            while j < len(p):
                d = p[j]
                if d == "\\":
                    j += 2
                    continue
                if d == "{":
                    depth += 1
                elif d == "}":
                    depth -= 1
                    if depth == 0:
                        break
                elif d == "," and depth == 1:
                    commas.append(j)
                j += 1
            if j < len(p) and commas:
                bounds = [i, *commas, j]
                return i, j, [p[a + 1 : b] for a, b in zip(bounds, bounds[1:], strict=False)]
        i += 1
    return None


def _tokens(seg: str) -> tuple[_Token, ...]:
    out: list[_Token] = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "\\" and i + 1 < len(seg):
            out.append(seg[i + 1])
            i += 2
            continue
        if c == "*":
            if not out or out[-1] is not _STAR:
                out.append(_STAR)
        elif c == "?":
            out.append(_ANY)
        elif c == "[":
            cls, nxt = _parse_class(seg, i)
            if cls is None:
                out.append("[")
            else:
                out.append(cls)
                i = nxt
                continue
        else:
            out.append(c)
        i += 1
    return tuple(out)


def _parse_class(seg: str, i: int) -> tuple[_Class | None, int]:
    j = i + 1
    negated = j < len(seg) and seg[j] in "!^"
    if negated:
        j += 1
    ranges: list[tuple[str, str]] = []
    first = True
    while j < len(seg) and (seg[j] != "]" or first):
        first = False
        c = seg[j]
        if c == "\\" and j + 1 < len(seg):
            j += 1
            c = seg[j]
        if j + 2 < len(seg) and seg[j + 1] == "-" and seg[j + 2] != "]":
            ranges.append((c, seg[j + 2]))
            j += 3
        else:
            ranges.append((c, c))
            j += 1
    if j >= len(seg):
        return None, i + 1  # no closing bracket: a literal '['
    return _Class(tuple(ranges), negated), j + 1


def _chunk_regex(tokens: list[_Token]) -> str:
    out = []
    for tok in tokens:
        if tok is _ANY:
            out.append(".")
        elif isinstance(tok, _Class):
            body = "".join(
                re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}"
                for lo, hi in tok.ranges
                if lo <= hi
            )
            if not body:
                out.append("." if tok.negated else "(?!)")
            else:
                out.append(f"[{'^' if tok.negated else ''}{body}]")
        else:
            assert isinstance(tok, str)
            out.append(re.escape(tok))
    return "".join(out)


def _segment_regex(tokens: tuple[_Token, ...]) -> re.Pattern[str]:
    """One segment as a regex that cannot backtrack catastrophically: as in CPython's fnmatch, each
    chunk between two `*` is found by an atomic lookahead (`(?=(?P<g>.*?chunk))(?P=g)`), so the
    engine never re-tries earlier stars: the scan is linear in the name per chunk."""
    chunks: list[list[_Token]] = [[]]
    for tok in tokens:
        if tok is _STAR:
            chunks.append([])
        else:
            chunks[-1].append(tok)
    parts = [_chunk_regex(chunks[0])]
    if len(chunks) > 1:
        for i, chunk in enumerate(chunks[1:-1]):
            parts.append(f"(?=(?P<g{i}>.*?{_chunk_regex(chunk)}))(?P=g{i})")
        parts.append(".*" + _chunk_regex(chunks[-1]))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


class _Compiled:
    def __init__(self, pattern: str) -> None:
        segs = [s for s in pattern.split("/") if s not in ("", ".")]
        self.segments: tuple[re.Pattern[str] | None, ...] = tuple(
            None if s == _GLOBSTAR else _segment_regex(_tokens(s)) for s in segs
        )
        """One regex per segment; None for a `**` segment."""
        self.plain: tuple[re.Pattern[str], ...] | None = (
            tuple(x for x in self.segments if x is not None) if None not in self.segments else None
        )
        """The segments when there is no `**`: a path matches segment by segment."""
        n = len(self.segments)
        # a leading `**/` then plain segments (the common `**/*.py`): match the tail of the path
        rest = self.segments[1:]
        self.tail: tuple[re.Pattern[str], ...] | None = (
            tuple(x for x in rest if x is not None)
            if n > 1 and self.segments[0] is None and None not in rest
            else None
        )
        # positions reachable from each position by letting `**` segments match nothing
        self._eps: list[tuple[int, ...]] = []
        for pi in range(n + 1):
            reach = [pi]
            while reach[-1] < n and self.segments[reach[-1]] is None:
                reach.append(reach[-1] + 1)
            self._eps.append(tuple(reach))

    def _all(self, segs: tuple[re.Pattern[str], ...], parts: list[str]) -> bool:
        return all(rx.match(part) is not None for rx, part in zip(segs, parts, strict=True))

    def match(self, parts: list[str]) -> bool:
        segs = self.segments
        if self.plain is not None:
            return len(self.plain) == len(parts) and self._all(self.plain, parts)
        if self.tail is not None:
            k = len(self.tail)
            return len(parts) >= k and self._all(self.tail, parts[len(parts) - k :])
        # a set of pattern positions, advanced one path segment at a time: O(segments x parts)
        n = len(segs)
        states = set(self._eps[0])
        for part in parts:
            nxt: set[int] = set()
            for pi in states:
                if pi == n:
                    continue
                rx = segs[pi]
                if rx is None:
                    nxt.update(self._eps[pi])
                elif rx.match(part) is not None:
                    nxt.update(self._eps[pi + 1])
            if not nxt:
                return False
            states = nxt
        return n in states


class Glob:
    """One pattern (braces expanded). `match(rel)` tests a '/'-separated path relative to the walk's start."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN:
            raise ToolError(f"a pattern is longer than {MAX_PATTERN} characters")
        self.pattern = pattern
        body = pattern[2:] if pattern.startswith("./") else pattern
        self._alternatives = [_Compiled(p) for p in expand_braces(body)]

    def match(self, rel: str) -> bool:
        parts = [p for p in rel.split("/") if p]
        return any(a.match(parts) for a in self._alternatives)


class NameOrPathGlob:
    """A pattern tested against the relative path, and also against the bare name when it has no `/`
    (so `*.py` finds Python files at any depth, `src/*.py` only directly under src)."""

    def __init__(self, pattern: str) -> None:
        self.glob = Glob(pattern)
        self.by_name = "/" not in pattern.strip("/")

    def match(self, rel: str, name: str) -> bool:
        return self.glob.match(rel) or (self.by_name and self.glob.match(name))


class Excluder:
    """`excludePatterns`: an entry is left out (and a directory not entered) when a pattern matches its
    relative path, its name, or a trailing part of its path (`node_modules`, `*.log`, `build/cache`);
    a leading `/` anchors a pattern to the walk's start, as in .gitignore (`/build`)."""

    def __init__(self, patterns: list[str]) -> None:
        self._globs: list[Glob] = []
        for p in patterns:
            p = p.strip()
            if not p:
                continue
            self._globs.append(Glob(p))
            if not p.startswith(("**/", "/")):
                self._globs.append(Glob("**/" + p))

    def __bool__(self) -> bool:
        return bool(self._globs)

    def excluded(self, rel: str) -> bool:
        return any(g.match(rel) for g in self._globs)

"""The key allowlist: Redis glob patterns (`*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\\x`) compiled once to regexes."""

from __future__ import annotations

import re


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """The regex matching exactly the keys Redis's MATCH would (stringmatchlen semantics)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            chars: list[str] = []
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\" and j + 1 < n:
                    j += 1
                    chars.append(re.escape(pattern[j]))
                elif pattern[j] == "-" and chars and j + 1 < n and pattern[j + 1] != "]":
                    chars.append("-")
                else:
                    chars.append(re.escape(pattern[j]))
                j += 1
            if j >= n:  # no closing bracket: Redis treats the rest literally
                out.append(re.escape(pattern[i:]))
                break
            out.append("[" + ("^" if negate else "") + "".join(chars) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class Allowlist:
    """Which keys a call may touch: every key when empty."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = list(patterns)
        self._regexes = [glob_to_regex(p) for p in patterns]

    @property
    def everything(self) -> bool:
        return not self._regexes

    def allows(self, key: str) -> bool:
        return not self._regexes or any(r.fullmatch(key) for r in self._regexes)

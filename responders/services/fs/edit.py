"""Text edits for edit_file: exact replacement first, then a line match that ignores indentation
and trailing whitespace and re-indents the new text to fit the file; a unified diff of the result.

Each edit must match exactly one place: an ambiguous or missing match refuses the whole
call (nothing is written) with a sentence naming the edit.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated

from msgspec import Meta, Struct

from ...errors import ToolError

_INDENT = re.compile(r"[ \t]*")


class Edit(Struct, kw_only=True, forbid_unknown_fields=True):
    """One replacement."""

    oldText: Annotated[
        str, Meta(description="Text to search for: exact, else line by line ignoring indentation")
    ]
    newText: Annotated[str, Meta(description="Text to replace with")]


def _indent(line: str) -> str:
    m = _INDENT.match(line)
    return m.group(0) if m else ""


def _excerpt(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:200] + "…")


def _lines(text: str) -> list[str]:
    """Lines of an edit's text; one trailing newline does not make an extra empty line."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


def _reindent(new: list[str], old: list[str], found: list[str]) -> list[str]:
    """New lines with the file's indentation: each indentation used in oldText maps to the one it
    matched in the file; deeper levels keep their extra indentation on top of the mapped prefix."""
    mapping: dict[str, str] = {}
    for o, f in zip(old, found, strict=True):
        if o.strip():
            mapping.setdefault(_indent(o), _indent(f))
    out = []
    for line in new:
        if not line.strip():
            out.append("")
            continue
        ind = _indent(line)
        if ind in mapping:
            out.append(mapping[ind] + line[len(ind) :])
            continue
        best = max((k for k in mapping if ind.startswith(k)), key=len, default=None)
        out.append(line if best is None else mapping[best] + line[len(best) :])
    return out


def apply_edit(content: str, edit: Edit, index: int) -> str:
    """`content` with one edit applied, or ToolError when its oldText matches no place or several."""
    old = edit.oldText.replace("\r\n", "\n")
    new = edit.newText.replace("\r\n", "\n")
    if not old:
        raise ToolError(f"edit {index}: oldText is empty; quote the text to replace")
    count = content.count(old)
    if count == 1:
        return content.replace(old, new, 1)
    if count > 1:
        raise ToolError(
            f"edit {index}: oldText matches {count} places; include more surrounding lines so it matches one: {_excerpt(edit.oldText)}"
        )
    old_lines = _lines(old)
    stripped = [x.strip() for x in old_lines]
    if not any(stripped):
        raise ToolError(f"edit {index}: oldText is only whitespace and matches nothing exactly")
    lines = content.split("\n")
    keys = [x.strip() for x in lines]
    n = len(old_lines)
    hits = [i for i in range(len(lines) - n + 1) if keys[i : i + n] == stripped]
    if not hits:
        raise ToolError(
            f"edit {index}: could not find oldText in the file (exactly or line by line): {_excerpt(edit.oldText)}"
        )
    if len(hits) > 1:
        raise ToolError(
            f"edit {index}: oldText matches {len(hits)} places (ignoring whitespace); include more surrounding lines: {_excerpt(edit.oldText)}"
        )
    i = hits[0]
    replacement = _reindent(_lines(new), old_lines, lines[i : i + n]) if new else []
    return "\n".join(lines[:i] + replacement + lines[i + n :])


def apply_edits(content: str, edits: list[Edit]) -> str:
    """All edits, in order, each on the result of the previous one. CRLF content is edited as LF."""
    text = content.replace("\r\n", "\n")
    for index, edit in enumerate(edits, start=1):
        text = apply_edit(text, edit, index)
    return text


def unified_diff(before: str, after: str, name: str) -> str:
    """A git-style unified diff (4 lines of context, as the reference server's jsdiff output),
    with `\\ No newline at end of file` where it applies."""
    a = before.replace("\r\n", "\n").splitlines(keepends=True)
    b = after.replace("\r\n", "\n").splitlines(keepends=True)
    out = [f"Index: {name}\n", "=" * 67 + "\n"]
    body = list(
        difflib.unified_diff(
            a, b, fromfile=name, tofile=name, fromfiledate="original", tofiledate="modified", n=4
        )
    )
    if not body:
        out += [f"--- {name}\toriginal\n", f"+++ {name}\tmodified\n"]
    for line in body:
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)

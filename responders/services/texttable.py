"""A readable pipe table for tool results: aligned columns, NULL for nulls, one line per row."""

from __future__ import annotations

from typing import Any

import msgspec

_CELL = 200
_encoder = msgspec.json.Encoder()


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    text = v if isinstance(v, str) else _encoder.encode(v).decode()
    text = (
        text.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("|", "\\|")
    )
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A readable pipe table: aligned columns, NULL for nulls, long cells cut at 200 characters."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in cells)
    return "\n".join(out)

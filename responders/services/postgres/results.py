"""What the postgres tools return: typed Structs (their outputSchema) that also render as a text table."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

from ..texttable import table

_encoder = msgspec.json.Encoder()


class Column(Struct, kw_only=True, frozen=True):
    name: str
    type: str
    """The PostgreSQL type name (int4, text, numeric, timestamptz, int4[], ...)."""


class QueryResult(Struct, kw_only=True):
    """A statement's result: columns with their types, rows as arrays in column order, JSON-safe values."""

    columns: list[Column]
    rows: list[list[Any]]
    rowCount: int
    """Rows returned here (after the caps), or rows affected for a statement that returns none."""
    truncated: bool
    """True when more rows existed than the row cap or the byte cap allowed."""
    truncatedBy: Literal["rows", "bytes"] | None = None
    command: str = ""
    """PostgreSQL's command tag (SELECT 1, INSERT 0 3, ...), when the statement finished."""

    def __mcp_text__(self) -> str:
        if not self.columns:
            return self.command or "OK"
        text = table([c.name for c in self.columns], self.rows)
        rows = f"({self.rowCount} row{'s' if self.rowCount != 1 else ''})"
        if self.truncated:
            cap = "the row limit" if self.truncatedBy == "rows" else "the byte cap"
            rows += f" truncated at {cap}: more rows exist; add WHERE/LIMIT or select fewer columns"
        return f"{text}\n{rows}"


class Explained(Struct, kw_only=True):
    plan: list[str]
    """EXPLAIN's text output, one line per item."""
    analyzed: bool

    def __mcp_text__(self) -> str:
        return "\n".join(self.plan)


class SchemaInfo(Struct, kw_only=True, frozen=True):
    name: str
    owner: str


class Schemas(Struct, kw_only=True):
    schemas: list[SchemaInfo]

    def __mcp_text__(self) -> str:
        return table(["schema", "owner"], [[s.name, s.owner] for s in self.schemas])


class TableInfo(Struct, kw_only=True, frozen=True):
    schema: str
    name: str
    kind: Literal["table", "view", "materialized view", "foreign table", "partitioned table"]
    rowEstimate: int | None
    """pg_class.reltuples (None when never analyzed)."""
    totalBytes: int | None
    comment: str | None = None


class Tables(Struct, kw_only=True):
    tables: list[TableInfo]

    def __mcp_text__(self) -> str:
        return table(
            ["schema", "name", "kind", "rows (est.)", "size", "comment"],
            [[t.schema, t.name, t.kind, t.rowEstimate, _size(t.totalBytes), t.comment] for t in self.tables],
        )


def _size(n: int | None) -> str | None:
    if n is None:
        return None
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return None


class ColumnInfo(Struct, kw_only=True, frozen=True):
    name: str
    type: str
    nullable: bool
    default: str | None = None
    comment: str | None = None


class Constraint(Struct, kw_only=True, frozen=True):
    name: str
    type: Literal["primary key", "foreign key", "unique", "check", "exclusion", "not null", "trigger"]
    definition: str


class IndexInfo(Struct, kw_only=True, frozen=True):
    name: str
    definition: str
    unique: bool
    primary: bool


class TableDescription(Struct, kw_only=True):
    schema: str
    name: str
    kind: str
    comment: str | None
    columns: list[ColumnInfo]
    constraints: list[Constraint]
    indexes: list[IndexInfo]

    def __mcp_text__(self) -> str:
        head = f"{self.kind} {self.schema}.{self.name}" + (f" -- {self.comment}" if self.comment else "")
        cols = table(
            ["column", "type", "nullable", "default", "comment"],
            [[c.name, c.type, "yes" if c.nullable else "no", c.default, c.comment] for c in self.columns],
        )
        parts = [head, cols]
        if self.constraints:
            parts.append(
                "constraints:\n" + "\n".join(f"  {c.name} {c.type}: {c.definition}" for c in self.constraints)
            )
        if self.indexes:
            parts.append("indexes:\n" + "\n".join(f"  {i.definition}" for i in self.indexes))
        return "\n\n".join(parts)

"""What the neo4j tools return: typed Structs (their outputSchema) with a readable text form."""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

from ..texttable import table


class CypherResult(Struct, kw_only=True):
    """A query's records: column names, rows as arrays in column order, JSON-safe values."""

    columns: list[str]
    rows: list[list[Any]]
    rowCount: int
    truncated: bool
    truncatedBy: Literal["rows", "bytes"] | None = None
    counters: dict[str, int] | None = None
    """write_cypher: what changed (nodes_created, properties_set, ...), only the non-zero counters."""

    def __mcp_text__(self) -> str:
        parts = []
        if self.columns:
            parts.append(table(self.columns, self.rows))
            rows = f"({self.rowCount} record{'s' if self.rowCount != 1 else ''})"
            if self.truncated:
                rows += f" truncated at the {'row limit' if self.truncatedBy == 'rows' else 'byte cap'}: add LIMIT"
            parts.append(rows)
        if self.counters is not None:
            parts.append(", ".join(f"{k}: {v}" for k, v in self.counters.items()) or "no changes")
        return "\n".join(parts) or "(no records)"


class PropertyInfo(Struct, kw_only=True, frozen=True):
    owner: str
    """`:Label:Label` for nodes, `:TYPE` for relationships."""
    property: str | None
    types: list[str]
    mandatory: bool


class GraphSchema(Struct, kw_only=True):
    labels: list[str]
    relationshipTypes: list[str]
    nodeProperties: list[PropertyInfo]
    relationshipProperties: list[PropertyInfo]

    def __mcp_text__(self) -> str:
        def lines(props: list[PropertyInfo]) -> str:
            return "\n".join(
                f"  {p.owner} {p.property or '(no properties)'}: {'|'.join(p.types)}{' (mandatory)' if p.mandatory else ''}"
                for p in props
            )

        return (
            f"labels: {', '.join(self.labels) or '(none)'}\n"
            f"relationship types: {', '.join(self.relationshipTypes) or '(none)'}\n"
            f"node properties:\n{lines(self.nodeProperties)}\n"
            f"relationship properties:\n{lines(self.relationshipProperties)}"
        )

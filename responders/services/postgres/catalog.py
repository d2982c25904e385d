"""The schema tools' catalog queries: schemas, tables with estimates and sizes, one table's description.
Every query is parameterised (names never enter SQL text) and runs in the same read-only transaction
as any other call."""

from __future__ import annotations

from typing import Any, Final

import asyncpg

from .errors import DatabaseError
from .results import ColumnInfo, Constraint, IndexInfo, SchemaInfo, TableDescription, TableInfo

_KINDS: Final = {
    "r": "table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
    "p": "partitioned table",
}
_CONSTRAINTS: Final = {
    "p": "primary key",
    "f": "foreign key",
    "u": "unique",
    "c": "check",
    "x": "exclusion",
    "n": "not null",
    "t": "trigger",
}

SCHEMAS: Final = """
SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner
FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
  AND has_schema_privilege(n.oid, 'USAGE')
ORDER BY 1
"""

TABLES: Final = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS rows,
       CASE WHEN c.relkind IN ('r', 'm', 'p') THEN pg_total_relation_size(c.oid) END AS bytes,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND ($1::text IS NULL OR n.nspname = $1)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp_%'
  AND has_schema_privilege(n.oid, 'USAGE')
ORDER BY 1, 2
LIMIT $2
"""

RELATION: Final = """
SELECT c.oid, c.relkind::text AS kind, obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
"""

COLUMNS: Final = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS default, col_description(a.attrelid, a.attnum) AS comment
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

CONSTRAINTS: Final = """
SELECT conname AS name, contype::text AS type, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE conrelid = $1 ORDER BY contype, conname
"""

INDEXES: Final = """
SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisunique AS unique, i.indisprimary AS primary
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1 ORDER BY ic.relname
"""


async def list_schemas(conn: asyncpg.Connection) -> list[SchemaInfo]:
    return [SchemaInfo(name=r["name"], owner=r["owner"]) for r in await conn.fetch(SCHEMAS)]


async def list_tables(conn: asyncpg.Connection, schema: str | None, limit: int) -> list[TableInfo]:
    return [
        TableInfo(
            schema=r["schema"],
            name=r["name"],
            kind=_KINDS[r["kind"]],  # type: ignore[arg-type]
            rowEstimate=r["rows"],
            totalBytes=r["bytes"],
            comment=r["comment"],
        )
        for r in await conn.fetch(TABLES, schema, limit)
    ]


async def describe_table(conn: asyncpg.Connection, schema: str, table: str) -> TableDescription:
    rel: Any = await conn.fetchrow(RELATION, schema, table)
    if rel is None:
        raise DatabaseError(
            f"no table or view {schema}.{table} (names are case-sensitive); list_tables shows what exists"
        )
    oid = rel["oid"]
    columns = [ColumnInfo(**dict(r)) for r in await conn.fetch(COLUMNS, oid)]
    constraints = [
        Constraint(name=r["name"], type=_CONSTRAINTS.get(r["type"], "check"), definition=r["definition"])  # type: ignore[arg-type]
        for r in await conn.fetch(CONSTRAINTS, oid)
    ]
    indexes = [IndexInfo(**dict(r)) for r in await conn.fetch(INDEXES, oid)]
    return TableDescription(
        schema=schema,
        name=table,
        kind=_KINDS[rel["kind"]],
        comment=rel["comment"],
        columns=columns,
        constraints=constraints,
        indexes=indexes,
    )

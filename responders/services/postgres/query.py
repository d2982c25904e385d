"""Running one statement: prepared with the extended protocol (so PostgreSQL refuses a second
statement), fetched through a cursor in batches so the row cap and the byte cap stop the fetch
(a 50-million-row result is never materialised), every value made JSON-safe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import asyncpg
import msgspec

from .errors import ENDED_TRANSACTION, OneStatement
from .results import Column, Explained, QueryResult
from .values import to_json

BATCH: Final = 500
FIRST: Final = 64
"""Rows the one-round-trip first fetch asks for; a result this small never needs a cursor."""
_encoder = msgspec.json.Encoder()


async def fetch_capped(
    conn: asyncpg.Connection, sql: str, args: Sequence[Any], *, limit: int, max_bytes: int, rerun: bool = True
) -> QueryResult:
    """Run `sql` with `args` on `conn` (inside the caller's transaction) and collect at most `limit` rows
    and `max_bytes` bytes of JSON; `truncated` says whether more existed.

    A small result (at most FIRST rows) comes back in one round trip (Bind + Execute with a row limit on
    the unnamed portal). A larger one is fetched through a cursor in batches, so the caps stop the fetch;
    with `rerun` (reads only) the statement then runs again from the start, since the first batch's
    portal cannot be continued through asyncpg's public API."""
    stmt = await _prepare(conn, sql)
    attrs = stmt.get_attributes()
    if not attrs:  # a statement without a result set (SET, DO, INSERT without RETURNING, ...)
        await stmt.fetch(*args)
        tag = stmt.get_statusmsg() or ""
        # COMMIT/ROLLBACK AND CHAIN: it ended the call's transaction, then began another one
        if tag.startswith(("COMMIT", "ROLLBACK")):
            raise OneStatement(ENDED_TRANSACTION)
        return QueryResult(columns=[], rows=[], rowCount=_affected(tag), truncated=False, command=tag)
    columns = [Column(name=a.name, type=a.type.name) for a in attrs]
    records: Any = None
    if rerun:
        first = min(limit + 1, FIRST)
        records = await _first_batch(stmt, args, first)
        if records is not None and len(records) >= first and limit + 1 > first:
            records = None  # more rows than the first batch and the caller may want them: use the cursor
    collector = _Collector(limit, max_bytes)
    if records is not None:
        for record in records:
            if not collector.add(record):
                break
    else:
        async for record in stmt.cursor(*args, prefetch=min(limit + 1, BATCH)):
            if not collector.add(record):
                break
    return QueryResult(
        columns=columns,
        rows=collector.rows,
        rowCount=len(collector.rows),
        truncated=collector.cut is not None,
        truncatedBy=collector.cut,
    )


class _Collector:
    """Rows converted to JSON-safe values until the row cap or the byte cap is reached."""

    __slots__ = ("cut", "limit", "max_bytes", "rows", "size")

    def __init__(self, limit: int, max_bytes: int) -> None:
        self.limit, self.max_bytes = limit, max_bytes
        self.rows: list[list[Any]] = []
        self.size = 2
        self.cut: Literal["rows", "bytes"] | None = None

    def add(self, record: Any) -> bool:
        """Keep one record; False (and `cut` set) when a cap stops the fetch."""
        if len(self.rows) >= self.limit:
            self.cut = "rows"
            return False
        row = [to_json(v) for v in record.values()]
        self.size += len(_encoder.encode(row)) + 1
        if self.size > self.max_bytes:
            self.cut = "bytes"
            return False
        self.rows.append(row)
        return True


async def _first_batch(stmt: Any, args: Sequence[Any], n: int) -> list[Any] | None:
    """At most `n` rows in one round trip, as asyncpg's own fetchrow does (limit 1); None when this
    asyncpg has no such entry point (then the cursor path is used)."""
    bind_execute = getattr(stmt, "_PreparedStatement__bind_execute", None)
    if bind_execute is None:
        return None
    records: list[Any] = await bind_execute(args, n, None)
    return records


async def _prepare(conn: asyncpg.Connection, sql: str) -> Any:
    """Parse and describe `sql` as the unnamed statement (extended protocol: PostgreSQL refuses a second
    statement here). SQL written by a model rarely repeats, so caching it as a named statement would only
    churn asyncpg's cache (evictions, Close messages); `conn.prepare` would name it too, hence the internal
    entry point, with the public one as the fallback."""
    prepare = getattr(conn, "_prepare", None)
    if prepare is None:
        return await conn.prepare(sql)
    return await prepare(sql, name=False, use_cache=False)


def _affected(tag: str) -> int:
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def explain(conn: asyncpg.Connection, sql: str, *, analyze: bool) -> Explained:
    """EXPLAIN (or EXPLAIN ANALYZE, which runs the statement: the caller's transaction decides whether it may write)."""
    options = "ANALYZE, BUFFERS, FORMAT TEXT" if analyze else "FORMAT TEXT"
    records = await conn.fetch(f"EXPLAIN ({options}) {sql}")
    return Explained(plan=[r[0] for r in records], analyzed=analyze)

"""The postgres service's tools and resources (see the package docstring for what each guarantees)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import Meta

from ...errors import ToolError
from ...plugin import ServiceOptions, ServiceRuntime
from ...resources import ResourceEntry, ResourceNotFound
from ...service import Service
from . import catalog
from .database import Database
from .errors import DatabaseError, StatementTimeout
from .query import explain as run_explain
from .query import fetch_capped
from .results import Explained, QueryResult, Schemas, TableDescription, TableInfo, Tables
from .settings import PostgresSettings

VERSION: Final = "0.1.0"
MAX_SQL: Final = 100_000
MAX_TABLES: Final = 1000
GRACE_S: Final = 5.0
"""Beyond statement_timeout, the call's own timer cancels the statement (if the server's timer was defeated)."""
T = TypeVar("T")

Sql = Annotated[
    str, Meta(min_length=1, max_length=MAX_SQL, description="One SQL statement ($1, $2 ... for parameters)")
]
Params = Annotated[
    list[Any] | None,
    Meta(
        description="Values for $1, $2 ... in order (JSON; cast in SQL where the type is not text or a number)"
    ),
]


class PostgresService(Service):
    """A Service bound to one database; its lifespan is the Database's."""

    def __init__(self, settings: PostgresSettings, name: str) -> None:
        mode = "read-write" if settings.write else "read-only"
        super().__init__(
            name,
            VERSION,
            f"PostgreSQL database ({mode}): run SQL, explain it, list schemas and tables, describe a table.",
            title=f"PostgreSQL ({name})",
            instructions=(
                "One SQL statement per call. "
                + (
                    "Reads run in READ ONLY transactions; `execute` runs writes and commits."
                    if settings.write
                    else "Every call runs in a READ ONLY transaction that is rolled back: writes are refused by PostgreSQL."
                )
                + f" Results stop at {settings.max_rows} rows or {settings.max_bytes} bytes (truncated: true);"
                f" statements are cancelled after {settings.statement_timeout:g} s."
                " Start with list_tables and describe_table."
            ),
        )
        self.settings = settings
        self.db = Database(settings, name)
        self.tables: list[TableInfo] = []
        self.lifespan(self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, runtime: ServiceRuntime) -> AsyncIterator[None]:
        async with self.db.lifespan(runtime):
            with contextlib.suppress(DatabaseError):
                await self.refresh_tables()
            yield

    async def refresh_tables(self) -> list[TableInfo]:
        async def list_all(conn: Any) -> list[TableInfo]:
            return await catalog.list_tables(conn, None, MAX_TABLES)

        self.tables = await self.read(list_all)
        return self.tables

    async def read(self, fn: Callable[[Any], Awaitable[T]], *, write: bool = False) -> T:
        """`fn(conn)` in this call's transaction, under the backstop timer (statement_timeout + 5 s)."""
        limit = self.settings.statement_timeout + GRACE_S
        try:
            async with asyncio.timeout(limit):
                async with self.db.transaction(write=write) as conn:
                    return await fn(conn)
        except TimeoutError:
            raise StatementTimeout(
                f"the statement ran past {limit:g} s and was cancelled on the server; narrow it with WHERE or LIMIT"
            ) from None

    def resource_uri(self, schema: str, table: str) -> str:
        return f"postgres://{self.name}/{schema}/{table}/schema"


def _limit(settings: PostgresSettings, limit: int | None) -> int:
    return settings.max_rows if limit is None else min(limit, settings.max_rows)


def build(settings: PostgresSettings, options: ServiceOptions | None = None) -> PostgresService:
    """The postgres service for these settings. Raises ValueError without a usable URL."""
    if not settings.url:
        raise ValueError(
            "no database URL: pass --url postgresql://user@host:5432/db, or set [postgres] url or MCP_NATS_POSTGRES_URL"
        )
    if not settings.url.startswith(("postgresql://", "postgres://")):
        raise ValueError("the URL must start with postgresql:// (or postgres://)")
    svc = PostgresService(settings, options.name if options is not None else "postgres")
    cap = settings.max_rows

    @svc.tool(title="Query", read_only=True)
    async def query(
        sql: Sql,
        params: Params = None,
        limit: Annotated[int, Meta(ge=1, description=f"At most this many rows (default and maximum {cap})")]
        | None = None,
    ) -> QueryResult:
        """Run one read-only SQL statement and return its rows. It runs in a READ ONLY transaction that is rolled back, with a statement timeout; results stop at the row and byte caps (truncated: true)."""
        n = _limit(settings, limit)

        async def run(conn: Any) -> QueryResult:
            return await fetch_capped(conn, sql, params or (), limit=n, max_bytes=settings.max_bytes)

        return await svc.read(run)

    @svc.tool(title="Explain", read_only=True)
    async def explain(
        sql: Sql,
        analyze: Annotated[
            bool,
            Meta(
                description="Run the statement to measure it (only in a service started with --write; never for a statement that writes)"
            ),
        ] = False,
    ) -> Explained:
        """Show PostgreSQL's plan for one statement (EXPLAIN). With analyze, run it in a READ ONLY transaction and show actual times."""
        if analyze and not settings.write:
            raise ToolError(
                f"explain with analyze runs the statement; the {svc.name} service allows it only when started with --write"
            )

        async def run(conn: Any) -> Explained:
            return await run_explain(conn, sql, analyze=analyze)

        return await svc.read(run)

    @svc.tool(title="List Schemas", read_only=True)
    async def list_schemas() -> Schemas:
        """List the schemas this role can use."""

        async def run(conn: Any) -> Schemas:
            return Schemas(schemas=await catalog.list_schemas(conn))

        return await svc.read(run)

    @svc.tool(title="List Tables", read_only=True)
    async def list_tables(
        schema: Annotated[str, Meta(max_length=128, description="Only this schema (default: every schema)")]
        | None = None,
    ) -> Tables:
        """List tables and views with their estimated row counts and total sizes."""
        if schema is None:
            return Tables(tables=await svc.refresh_tables())

        async def run(conn: Any) -> Tables:
            return Tables(tables=await catalog.list_tables(conn, schema, MAX_TABLES))

        return await svc.read(run)

    @svc.tool(title="Describe Table", read_only=True)
    async def describe_table(
        table: Annotated[
            str, Meta(min_length=1, max_length=128, description="Table or view name (case-sensitive)")
        ],
        schema: Annotated[str, Meta(min_length=1, max_length=128, description="Its schema")] = "public",
    ) -> TableDescription:
        """Describe a table or view: columns (type, nullability, default, comment), constraints and indexes."""

        async def run(conn: Any) -> TableDescription:
            return await catalog.describe_table(conn, schema, table)

        return await svc.read(run)

    if settings.write:

        @svc.tool(title="Execute", destructive=True)
        async def execute(sql: Sql, params: Params = None) -> QueryResult:
            """Run one SQL statement that may write (INSERT, UPDATE, DELETE, DDL) and commit it; rows it returns (RETURNING) come back capped."""

            async def run(conn: Any) -> QueryResult:
                return await fetch_capped(
                    conn, sql, params or (), limit=cap, max_bytes=settings.max_bytes, rerun=False
                )

            return await svc.read(run, write=True)

    @svc.resource_template(
        f"postgres://{svc.name}/{{schema}}/{{table}}/schema",
        name="table-schema",
        description="A table's columns, constraints and indexes (JSON)",
        mime_type="application/json",
    )
    async def table_schema(schema: str, table: str) -> str:
        try:
            desc = await describe_table(table, schema)
        except DatabaseError as exc:
            if "no table or view" in str(exc):
                raise ResourceNotFound(svc.resource_uri(schema, table)) from None
            raise
        return msgspec.json.encode(desc).decode()

    @svc.resource_list
    def tables() -> list[ResourceEntry]:
        return [
            ResourceEntry(
                uri=svc.resource_uri(t.schema, t.name),
                name=f"{t.schema}.{t.name}",
                description=f"{t.kind} {t.schema}.{t.name}: columns, constraints, indexes",
                mimeType="application/json",
            )
            for t in svc.tables
        ]

    return svc

"""The `postgres` service: one PostgreSQL database, read-only unless started with --write.

    mcp-nats serve postgres --url postgresql://mcp_reader@db:5432/app [--name analytics] [--write]

Read-only is enforced by PostgreSQL, not by reading the SQL: every call is one statement
(extended protocol) in a READ ONLY transaction, rolled back, on a connection whose session
defaults (the timeouts, default_transaction_read_only) come in its startup packet and that is
reset before reuse; results are capped while fetching (database.py, query.py).
"""

from ...plugin import Argument, ServicePlugin
from .database import Database as Database
from .errors import ConnectionLost as ConnectionLost
from .errors import DatabaseError as DatabaseError
from .errors import OneStatement as OneStatement
from .errors import ReadOnlyRefused as ReadOnlyRefused
from .errors import StatementTimeout as StatementTimeout
from .service import PostgresService as PostgresService
from .service import build as build
from .settings import PostgresSettings as PostgresSettings
from .values import to_json as to_json

plugin = ServicePlugin(
    name="postgres",
    summary="a PostgreSQL database: SQL queries, plans and schema, read-only unless --write",
    settings=PostgresSettings,
    build=build,
    arguments=(
        Argument(
            "--url",
            key="url",
            metavar="URL",
            help="postgresql://user[:password]@host:5432/db (never printed with its password)",
        ),
        Argument(
            "--write",
            key="write",
            kind="flag",
            help="register `execute` and allow explain analyze (default: read-only)",
        ),
        Argument(
            "--statement-timeout",
            key="statement_timeout",
            kind="float",
            metavar="SECONDS",
            help="cancel statements after this long (default: 30)",
        ),
        Argument(
            "--max-rows",
            key="max_rows",
            kind="int",
            metavar="N",
            help="rows per result at most (default: 1000)",
        ),
    ),
    extra="db",
    requires=("asyncpg",),
)

__all__ = [
    "ConnectionLost",
    "Database",
    "DatabaseError",
    "OneStatement",
    "PostgresService",
    "PostgresSettings",
    "ReadOnlyRefused",
    "StatementTimeout",
    "build",
    "plugin",
    "to_json",
]

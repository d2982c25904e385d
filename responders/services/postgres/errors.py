"""The postgres service's errors, and the one place asyncpg's exceptions become them.

    ToolError                    (responders.errors) a result with isError: true
     └── DatabaseError           the database refused or failed the statement; the sentence says why
          ├── ReadOnlyRefused    the statement tried to write in a read-only service
          ├── StatementTimeout   the server cancelled the statement at statement_timeout
          ├── OneStatement       more than one statement, or one that ended the call's transaction
          └── ConnectionLost     the connection failed or was terminated; the next call gets a new one

`map_pg_errors()` is the boundary (STYLE 22): every asyncpg call of this service runs inside it.
Messages pass through `Secrets.scrub`, so a password in a server message never leaves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from ...errors import ToolError
from ..dsn import Secrets

ENDED_TRANSACTION = (
    "the statement ended the call's transaction (COMMIT, ROLLBACK, END or PREPARE TRANSACTION, also AND CHAIN): "
    "transaction control is not allowed; every call is its own transaction"
)


class DatabaseError(ToolError):
    """Raised when PostgreSQL refuses or fails a statement; the message is PostgreSQL's, with its SQLSTATE."""


class ReadOnlyRefused(DatabaseError):
    """Raised when a statement tries to write (or to leave the read-only mode) in a read-only service."""


class StatementTimeout(DatabaseError):
    """Raised when the server cancelled the statement because it ran past the statement timeout."""


class OneStatement(DatabaseError):
    """Raised for several statements in one call, or a statement that ended the call's own transaction."""


class ConnectionLost(DatabaseError):
    """Raised when the connection to PostgreSQL failed or was terminated during the call."""


def _detail(exc: asyncpg.PostgresError) -> str:
    parts = [str(getattr(exc, "message", "") or exc).strip()]
    for extra in ("detail", "hint"):
        value = getattr(exc, extra, None)
        if value:
            parts.append(f"{extra}: {value}")
    return "; ".join(p for p in parts if p)


@contextlib.contextmanager
def map_pg_errors(secrets: Secrets, *, timeout_s: float, service: str) -> Iterator[None]:
    """Translate asyncpg's exceptions raised inside the block into DatabaseError sentences."""
    try:
        yield
    except asyncpg.QueryCanceledError as exc:
        raise StatementTimeout(
            f"the statement was cancelled by the server: {secrets.scrub(_detail(exc))} "
            f"(statement timeout {timeout_s:g} s); narrow it with WHERE or LIMIT, or ask for less"
        ) from None
    except asyncpg.ReadOnlySQLTransactionError as exc:
        raise ReadOnlyRefused(
            f"refused: the {service} service is read-only and PostgreSQL rejected a write ({secrets.scrub(_detail(exc))}); "
            "only reading statements run here"
        ) from None
    except asyncpg.ActiveSQLTransactionError as exc:
        raise ReadOnlyRefused(
            f"refused: {secrets.scrub(_detail(exc))} (each call runs in its own transaction)"
        ) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise DatabaseError(
            f"permission denied: {secrets.scrub(_detail(exc))} (the service's database role may not do this)"
        ) from None
    except asyncpg.PostgresSyntaxError as exc:
        text = secrets.scrub(_detail(exc))
        if "multiple commands" in text:
            raise OneStatement(
                f"one statement per call: {text}; send each statement in its own call"
            ) from None
        position = getattr(exc, "position", None)
        where = f" at character {position}" if position else ""
        raise DatabaseError(f"SQL syntax error{where}: {text}") from None
    except (
        asyncpg.AdminShutdownError,
        asyncpg.CannotConnectNowError,
        asyncpg.CrashShutdownError,
        asyncpg.PostgresConnectionError,
    ) as exc:
        raise ConnectionLost(
            f"the database closed the connection ({secrets.scrub(_detail(exc))}); the call did not complete, retry it"
        ) from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise ConnectionLost(f"the database refused the login: {secrets.scrub(_detail(exc))}") from None
    except asyncpg.DataError as exc:
        text = secrets.scrub(_detail(exc))
        if "query argument" in text:  # asyncpg could not encode a parameter for its inferred type
            raise DatabaseError(
                f"bad parameter: {text}; pass it as text and cast in SQL, e.g. $1::text::date"
            ) from None
        raise DatabaseError(f"PostgreSQL error {exc.sqlstate}: {text}") from None
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"PostgreSQL error {exc.sqlstate}: {secrets.scrub(_detail(exc))}") from None
    except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
        raise ConnectionLost(
            f"the connection to the database was lost ({secrets.scrub(str(exc))}); the call did not complete, retry it"
        ) from None
    except (TimeoutError, OSError) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConnectionLost(
            f"cannot reach the database: {secrets.scrub(str(what))}; retry the call later"
        ) from None

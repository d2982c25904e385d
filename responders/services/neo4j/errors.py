"""The neo4j service's errors, and the one place the driver's exceptions become them.

    ToolError                  (responders.errors) a result with isError: true
     └── GraphError            Neo4j refused or failed the query; the sentence says why
          ├── WriteRefused     the query would write (EXPLAIN said so, or the READ session refused it)
          └── ConnectionLost   Neo4j cannot be reached or the session broke; retry the call

`map_neo4j_errors()` is the boundary (STYLE 22); messages pass through `Secrets.scrub`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import neo4j.exceptions as nx

from ...errors import ToolError
from ..dsn import Secrets


class GraphError(ToolError):
    """Raised when Neo4j refuses or fails a query; the message is the server's, with its code."""


class WriteRefused(GraphError):
    """Raised when a read query would write: its plan is not read-only, or the READ session refused it."""


class ConnectionLost(GraphError):
    """Raised when Neo4j cannot be reached, or the connection or session broke during the call."""


def _what(exc: nx.Neo4jError) -> str:
    return f"{exc.message or exc}" + (f" ({exc.code})" if exc.code else "")


@contextlib.contextmanager
def map_neo4j_errors(secrets: Secrets, *, service: str, timeout_s: float) -> Iterator[None]:
    """Translate the driver's exceptions raised inside the block into GraphError sentences."""
    try:
        yield
    except nx.AuthError as exc:
        raise ConnectionLost(f"Neo4j refused the login: {secrets.scrub(_what(exc))}") from None
    except nx.CypherSyntaxError as exc:
        raise GraphError(f"Cypher syntax error: {secrets.scrub(_what(exc))}") from None
    except (nx.Forbidden, nx.ForbiddenOnReadOnlyDatabase) as exc:
        raise WriteRefused(
            f"refused: the {service} service runs this query read-only and Neo4j rejected a write ({secrets.scrub(_what(exc))})"
        ) from None
    except nx.ClientError as exc:
        if exc.code and "AccessMode" in exc.code:  # a write attempted in a READ session or transaction
            raise WriteRefused(
                f"refused: the {service} service ran this query read-only and Neo4j rejected a write ({secrets.scrub(_what(exc))})"
            ) from None
        if exc.code and "TransactionTimedOut" in exc.code:
            raise GraphError(
                f"the query ran past {timeout_s:g} s and was stopped by the server; narrow it (LIMIT, WHERE)"
            ) from None
        raise GraphError(f"Neo4j error: {secrets.scrub(_what(exc))}") from None
    except nx.Neo4jError as exc:
        raise GraphError(f"Neo4j error: {secrets.scrub(_what(exc))}") from None
    except (nx.ServiceUnavailable, nx.SessionExpired, nx.ConnectionAcquisitionTimeoutError) as exc:
        raise ConnectionLost(
            f"cannot reach Neo4j ({secrets.scrub(str(exc))}); retry the call later"
        ) from None
    except nx.DriverError as exc:
        raise GraphError(f"Neo4j driver error: {secrets.scrub(str(exc))}") from None

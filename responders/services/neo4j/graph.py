"""The Neo4j driver of one service instance, and how each kind of call runs.

`Graph.lifespan` is the service's lifespan: it makes the official async driver (credentials
taken out of the URL and passed as auth), checks connectivity once (a warning when Neo4j is not
there yet) and closes it after drain. Reads run in a READ-mode session, inside a managed READ
transaction with the server-side timeout, and only after `EXPLAIN` of the same query reports a
read-only plan (`summary.query_type == "r"`); writes (with --write) in a WRITE transaction.
Results stop at the row and byte caps while records stream in."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec
import neo4j

from schemas.observe import BackendTracer, NoTracer

from ...plugin import ServiceRuntime
from ..dsn import Secrets, redact
from .errors import ConnectionLost, WriteRefused, map_neo4j_errors
from .results import CypherResult, GraphSchema, PropertyInfo
from .settings import Neo4jSettings
from .values import to_json

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()
_COUNTERS = (
    "nodes_created", "nodes_deleted", "relationships_created", "relationships_deleted", "properties_set",
    "labels_added", "labels_removed", "indexes_added", "indexes_removed", "constraints_added", "constraints_removed",
)  # fmt: skip


def split_auth(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without credentials, (user, password) or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), (
        unquote(user),
        unquote(password),
    )


class Graph:
    """Owns the driver (see the module docstring)."""

    def __init__(self, settings: Neo4jSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.secrets = Secrets(settings.url)
        self.shown_url = redact(settings.url)
        self.tracer: BackendTracer = NoTracer()
        self._driver: neo4j.AsyncDriver | None = None

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return map_neo4j_errors(self.secrets, service=self.service, timeout_s=self.settings.timeout)

    @contextlib.asynccontextmanager
    async def lifespan(self, runtime: ServiceRuntime) -> AsyncIterator[None]:
        self.tracer = runtime.tracer
        uri, auth = split_auth(self.settings.url)
        with self.errors():
            driver = neo4j.AsyncGraphDatabase.driver(
                uri,
                auth=auth,
                connection_timeout=self.settings.timeout,
                connection_acquisition_timeout=self.settings.timeout,
                user_agent=f"mcp-nats/{self.service}",
                max_transaction_retry_time=min(
                    self.settings.timeout, 5.0
                ),  # the caller has a deadline; retry briefly
            )
        self._driver = driver
        try:
            try:
                with self.errors():
                    await driver.verify_connectivity()
                log.info("%s: connected to %s", self.service, self.shown_url)
            except ConnectionLost as exc:
                log.warning(
                    "%s: cannot reach %s yet: %s (each call retries)", self.service, self.shown_url, exc
                )
            yield
        finally:
            self._driver = None
            await driver.close()

    def driver(self) -> neo4j.AsyncDriver:
        if self._driver is None:
            raise ConnectionLost(
                f"the {self.service} service is not connected to Neo4j (starting or stopping)"
            )
        return self._driver

    def _session(self, mode: str) -> neo4j.AsyncSession:
        return self.driver().session(database=self.settings.database or None, default_access_mode=mode)

    async def read(self, query: str, params: dict[str, Any], limit: int) -> CypherResult:
        """Run a read-only query; WriteRefused when its plan may write."""

        @neo4j.unit_of_work(timeout=self.settings.timeout)
        async def work(tx: neo4j.AsyncManagedTransaction) -> CypherResult:
            plan = await (await tx.run("EXPLAIN " + query, params)).consume()
            if plan.query_type != "r":
                raise WriteRefused(
                    f"refused: read_cypher runs only read-only queries, and this one's plan is {plan.query_type!r} "
                    "(r: read, rw: read-write, w: write, s: schema)"
                    + ("; use write_cypher" if self.settings.write else "")
                )
            return await self._collect(await tx.run(query, params), limit)

        with self.errors(), self.tracer.span("neo4j.read", {"db.system": "neo4j"}):
            async with self._session(neo4j.READ_ACCESS) as session:
                result: CypherResult = await session.execute_read(work)
                return result

    async def write(self, query: str, params: dict[str, Any], limit: int) -> CypherResult:
        @neo4j.unit_of_work(timeout=self.settings.timeout)
        async def work(tx: neo4j.AsyncManagedTransaction) -> CypherResult:
            result = await tx.run(query, params)
            out = await self._collect(result, limit)
            counters = (await result.consume()).counters
            out.counters = {k: getattr(counters, k) for k in _COUNTERS if getattr(counters, k)}
            return out

        with self.errors(), self.tracer.span("neo4j.write", {"db.system": "neo4j"}):
            async with self._session(neo4j.WRITE_ACCESS) as session:
                result: CypherResult = await session.execute_write(work)
                return result

    async def _collect(self, result: neo4j.AsyncResult, limit: int) -> CypherResult:
        columns = list(result.keys())
        rows: list[list[Any]] = []
        size = 2
        cut: Literal["rows", "bytes"] | None = None
        async for record in result:
            if len(rows) >= limit:
                cut = "rows"
                break
            row = [to_json(v, self.settings.max_list) for v in record.values()]
            size += len(_encoder.encode(row)) + 1
            if size > self.settings.max_bytes:
                cut = "bytes"
                break
            rows.append(row)
        return CypherResult(
            columns=columns, rows=rows, rowCount=len(rows), truncated=cut is not None, truncatedBy=cut
        )

    async def schema(self) -> GraphSchema:
        """Labels, relationship types and typed properties from the db.* procedures (no APOC needed)."""

        @neo4j.unit_of_work(timeout=self.settings.timeout)
        async def work(tx: neo4j.AsyncManagedTransaction) -> GraphSchema:
            labels = [
                r[0]
                for r in await (
                    await tx.run("CALL db.labels() YIELD label RETURN label ORDER BY label")
                ).values()
            ]
            types = [
                r[0]
                for r in await (
                    await tx.run(
                        "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType ORDER BY relationshipType"
                    )
                ).values()
            ]
            nodes = await (
                await tx.run(
                    "CALL db.schema.nodeTypeProperties() YIELD nodeType, propertyName, propertyTypes, mandatory "
                    "RETURN nodeType, propertyName, propertyTypes, mandatory ORDER BY nodeType, propertyName"
                )
            ).values()
            rels = await (
                await tx.run(
                    "CALL db.schema.relTypeProperties() YIELD relType, propertyName, propertyTypes, mandatory "
                    "RETURN relType, propertyName, propertyTypes, mandatory ORDER BY relType, propertyName"
                )
            ).values()
            return GraphSchema(
                labels=labels,
                relationshipTypes=types,
                nodeProperties=[
                    PropertyInfo(owner=o, property=p, types=list(t or []), mandatory=bool(m))
                    for o, p, t, m in nodes
                ],
                relationshipProperties=[
                    PropertyInfo(owner=o, property=p, types=list(t or []), mandatory=bool(m))
                    for o, p, t, m in rels
                ],
            )

        with self.errors():
            async with self._session(neo4j.READ_ACCESS) as session:
                result: GraphSchema = await session.execute_read(work)
                return result

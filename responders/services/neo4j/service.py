"""Builds the neo4j service: get_schema and read_cypher always, write_cypher only with --write."""

from typing import Annotated, Any, Final

from msgspec import Meta

from ...plugin import ServiceOptions
from ...service import Service
from .graph import Graph
from .results import CypherResult, GraphSchema
from .settings import Neo4jSettings

VERSION: Final = "0.1.0"
Cypher = Annotated[
    str, Meta(min_length=1, max_length=100_000, description="One Cypher query ($name for parameters)")
]
Params = Annotated[dict[str, Any] | None, Meta(description="Query parameters by name")]


class Neo4jService(Service):
    """A Service bound to one Neo4j database; its lifespan is the Graph's."""

    def __init__(self, settings: Neo4jSettings, name: str) -> None:
        super().__init__(
            name,
            VERSION,
            f"Neo4j graph database ({'read-write' if settings.write else 'read-only'}): schema and Cypher queries.",
            title=f"Neo4j ({name})",
            instructions=(
                "Call get_schema first. read_cypher runs only queries whose plan is read-only, in a READ transaction"
                f" stopped after {settings.timeout:g} s; results stop at {settings.max_rows} records."
                + (" write_cypher runs writes." if settings.write else " This service is read-only.")
            ),
        )
        self.graph = Graph(settings, name)
        self.lifespan(self.graph.lifespan)


def build(settings: Neo4jSettings, options: ServiceOptions | None = None) -> Neo4jService:
    """The neo4j service for these settings. Raises ValueError without a usable URL."""
    if not settings.url:
        raise ValueError(
            "no Neo4j URL: pass --url neo4j://user:password@host:7687, or set [neo4j] url or MCP_NATS_NEO4J_URL"
        )
    if not settings.url.startswith(
        ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")
    ):
        raise ValueError("the URL must start with neo4j:// or bolt:// (or their +s / +ssc forms)")
    svc = Neo4jService(settings, options.name if options is not None else "neo4j")
    graph = svc.graph
    cap = settings.max_rows

    @svc.tool(title="Get Schema", read_only=True)
    async def get_schema() -> GraphSchema:
        """The graph's labels, relationship types and their properties with types (from db.labels, db.relationshipTypes, db.schema.*; no APOC needed)."""
        return await graph.schema()

    @svc.tool(title="Read Cypher", read_only=True)
    async def read_cypher(
        query: Cypher,
        params: Params = None,
        limit: Annotated[
            int, Meta(ge=1, description=f"At most this many records (default and maximum {cap})")
        ]
        | None = None,
    ) -> CypherResult:
        """Run a read-only Cypher query. Its plan is checked first (EXPLAIN): a query that may write is refused; it runs in a READ transaction with a timeout."""
        return await graph.read(query, params or {}, min(limit or cap, cap))

    if settings.write:

        @svc.tool(title="Write Cypher", destructive=True)
        async def write_cypher(query: Cypher, params: Params = None) -> CypherResult:
            """Run a Cypher query that may write, in a WRITE transaction; returns its records and what changed."""
            return await graph.write(query, params or {}, cap)

    return svc

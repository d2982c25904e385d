"""The `memory` service: the reference MCP memory server's knowledge graph, shared by every instance.

Tools, argument shapes, annotations and result formats are those of
`@modelcontextprotocol/server-memory` 2026.8.31 (text: the result as 2-space-indented JSON, or
the sentence for the delete tools; structuredContent: the same object), plus:
- `read_graph` takes optional `limit` and `cursor` and then returns one page and `nextCursor`;
- `search_nodes` ranks by relevance and accepts several words in any order (search.py);
- every mutation announces `resource_updated` for `memory://knowledge-graph` on the bus.
Storage, concurrency and consistency: graph.py.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from bus import BusError, JetStream, KeyValue

from ...context import Context
from ...plugin import ServiceOptions, ServiceRuntime
from ...service import Service
from .graph import Entity, Graph, GraphPage, Relation, as_text
from .settings import MemorySettings

log = logging.getLogger(__name__)

VERSION: Final = "0.1.0"
GRAPH_URI: Final = "memory://knowledge-graph"
SEARCH_QUERY_MAX_LENGTH: Final = 2048
MAX_PAGE: Final = 1000


class EntitiesOutput(Struct, kw_only=True):
    entities: list[Entity]

    def __mcp_text__(self) -> str:
        return as_text(self.entities)


class RelationsOutput(Struct, kw_only=True):
    relations: list[Relation]

    def __mcp_text__(self) -> str:
        return as_text(self.relations)


class ObservationAddition(Struct, kw_only=True):
    entityName: Annotated[str, Meta(description="The name of the entity to add the observations to")]
    contents: Annotated[list[str], Meta(description="An array of observation contents to add")]


class AddedObservations(Struct, kw_only=True):
    entityName: str
    addedObservations: list[str]


class AddObservationsOutput(Struct, kw_only=True):
    results: list[AddedObservations]

    def __mcp_text__(self) -> str:
        return as_text(self.results)


class ObservationDeletion(Struct, kw_only=True):
    entityName: Annotated[str, Meta(description="The name of the entity containing the observations")]
    observations: Annotated[list[str], Meta(description="An array of observations to delete")]


class Status(Struct, kw_only=True):
    success: bool
    message: str

    def __mcp_text__(self) -> str:
        return self.message


class MemoryService(Service):
    """The memory Service; its lifespan binds it to the KV bucket for the life of an instance."""

    def __init__(self, settings: MemorySettings, name: str = "memory") -> None:
        super().__init__(
            name,
            VERSION,
            "A knowledge graph of entities, relations and observations that persists across sessions, "
            "shared by every instance (JetStream KV with compare-and-set updates).",
            title="Knowledge graph memory",
        )
        self.settings = settings
        self.graph: Graph | None = None
        self.lifespan(self.attach)

    def use(self, graph: Graph) -> None:
        self.graph = graph

    def g(self) -> Graph:
        if self.graph is None:
            from ...errors import ToolError

            raise ToolError("the memory service is not connected to its store yet")
        return self.graph

    @contextlib.asynccontextmanager
    async def attach(self, runtime: ServiceRuntime) -> AsyncIterator[None]:
        """Bind the graph to the bucket `[memory] bucket` (default `<root>-memory`), creating it if needed."""
        bus = runtime.bus
        bucket = self.settings.bucket or f"{bus.subjects.root}-memory"
        js = JetStream(bus)
        replicas = self.settings.replicas

        async def open_kv() -> KeyValue:
            return await KeyValue.open(
                js, bucket, replicas=replicas, description="mcp-nats memory: the knowledge graph"
            )

        graph = Graph(open_kv, bucket, max_retries=self.settings.max_retries)
        self.use(graph)
        try:
            await graph.sync()
        except Exception as exc:  # the store may come later; every call reports it until then
            log.warning("memory: %s", exc)
        yield


async def _updated(ctx: Context) -> None:
    """Tell subscribers that the graph resource changed (best effort: the change itself is done)."""
    events = ctx.events
    if events is None:
        return
    try:
        await events.resource_updated(GRAPH_URI)
    except BusError:
        log.debug("resource_updated not published", exc_info=True)


def build(settings: MemorySettings, options: ServiceOptions | None = None) -> MemoryService:
    svc = MemoryService(settings, options.name if options is not None else "memory")
    svc.subscribable = True

    @svc.tool(title="Create Entities", destructive=False)
    async def create_entities(entities: list[Entity], ctx: Context) -> EntitiesOutput:
        """Create multiple new entities in the knowledge graph"""
        created = await svc.g().create_entities(entities)
        await _updated(ctx)
        return EntitiesOutput(entities=created)

    @svc.tool(title="Create Relations", destructive=False)
    async def create_relations(relations: list[Relation], ctx: Context) -> RelationsOutput:
        """Create multiple new relations between entities in the knowledge graph. Relations should be in active voice"""
        created = await svc.g().create_relations(relations)
        await _updated(ctx)
        return RelationsOutput(relations=created)

    @svc.tool(title="Add Observations", destructive=False)
    async def add_observations(
        observations: list[ObservationAddition], ctx: Context
    ) -> AddObservationsOutput:
        """Add new observations to existing entities in the knowledge graph"""
        added = await svc.g().add_observations([(o.entityName, o.contents) for o in observations])
        await _updated(ctx)
        return AddObservationsOutput(
            results=[AddedObservations(entityName=n, addedObservations=a) for n, a in added]
        )

    @svc.tool(title="Delete Entities", destructive=True, idempotent=True)
    async def delete_entities(
        entityNames: Annotated[list[str], Meta(description="An array of entity names to delete")],
        ctx: Context,
    ) -> Status:
        """Delete multiple entities and their associated relations from the knowledge graph"""
        await svc.g().delete_entities(entityNames)
        await _updated(ctx)
        return Status(success=True, message="Entities deleted successfully")

    @svc.tool(title="Delete Observations", destructive=True, idempotent=True)
    async def delete_observations(deletions: list[ObservationDeletion], ctx: Context) -> Status:
        """Delete specific observations from entities in the knowledge graph"""
        await svc.g().delete_observations([(d.entityName, d.observations) for d in deletions])
        await _updated(ctx)
        return Status(success=True, message="Observations deleted successfully")

    @svc.tool(title="Delete Relations", destructive=True, idempotent=True)
    async def delete_relations(
        relations: Annotated[list[Relation], Meta(description="An array of relations to delete")],
        ctx: Context,
    ) -> Status:
        """Delete multiple relations from the knowledge graph"""
        await svc.g().delete_relations(relations)
        await _updated(ctx)
        return Status(success=True, message="Relations deleted successfully")

    @svc.tool(title="Read Graph", read_only=True)
    async def read_graph(
        limit: Annotated[
            int,
            Meta(
                ge=1,
                le=MAX_PAGE,
                description="Page size: at most this many entities (and the relations from them); omit for the whole graph",
            ),
        ]
        | None = None,
        cursor: Annotated[str | None, Meta(description="The nextCursor of the previous page")] = None,
    ) -> GraphPage:
        """Read the entire knowledge graph"""
        if limit is None and cursor is None:
            return await svc.g().read()
        return await svc.g().read_page(cursor, limit or 100)

    @svc.tool(title="Search Nodes", read_only=True)
    async def search_nodes(
        query: Annotated[
            str,
            Meta(
                max_length=SEARCH_QUERY_MAX_LENGTH,
                description="The search query to match against entity names, types, and observation content",
            ),
        ],
    ) -> GraphPage:
        """Search for nodes in the knowledge graph based on a query"""
        return await svc.g().search(query)

    @svc.tool(title="Open Nodes", read_only=True)
    async def open_nodes(
        names: Annotated[list[str], Meta(description="An array of entity names to retrieve")],
    ) -> GraphPage:
        """Open specific nodes in the knowledge graph by their names"""
        return await svc.g().open(names)

    @svc.resource(
        GRAPH_URI,
        name="knowledge-graph",
        description="The full knowledge graph with all entities and relations",
        mime_type="application/json",
    )
    async def knowledge_graph() -> str:
        return as_text(await svc.g().read())

    spec = svc.resources[GRAPH_URI]
    spec.entry = msgspec.structs.replace(spec.entry, title="Knowledge Graph")
    return svc

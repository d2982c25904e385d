"""Builds the vector service: `store`/`find` shaped like mcp-server-qdrant's qdrant-store and
qdrant-find (payload `{document, metadata}`, the same named vector for the same model, the same
text results), plus the collection and point tools its users ask for. In read-only mode the
write tools are not registered at all."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from msgspec import Meta

from ...embeddings import EmbedderError
from ...plugin import ServiceOptions
from .errors import BackendFailed, InvalidPoint
from .filters import Filter, to_qdrant
from .outputs import (
    CollectionInfo,
    Collections,
    Count,
    Done,
    Entry,
    FindResult,
    Point,
    PointId,
    PointInput,
    Points,
    Stored,
    Vector,
    VectorParams,
)
from .service import VectorService
from .settings import VectorSettings

MAX_UPSERT = 1000
NewCollection = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="The collection name")
]
Collection = Annotated[
    NewCollection | None,
    Meta(description="The collection; optional when the service has a default collection"),
]
Limit = Annotated[int, Meta(ge=1, le=100, description="How many results (at most 100)")]
FilterArg = Annotated[
    Filter | None,
    Meta(description="A payload filter: {must|should|must_not: [conditions]} (see the service instructions)"),
]
Ids = Annotated[list[PointId], Meta(min_length=1, max_length=1000)]


def _id(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise InvalidPoint(f"point id {value} is negative; ids are unsigned integers or UUIDs")
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidPoint(f"point id {value!r} is neither an unsigned integer nor a UUID") from None


def _point(record: Any) -> Point:
    vector = record.vector
    if isinstance(vector, dict):
        vector = {k: list(v) for k, v in vector.items()}
    return Point(
        id=record.id,
        score=getattr(record, "score", None),
        payload=record.payload or None,
        vector=vector or None,
    )


async def _embed(svc: VectorService, text: str) -> list[float]:
    try:
        (vector,) = await svc.embedder().embed([text])
    except EmbedderError as exc:
        raise BackendFailed(str(exc)) from exc
    return vector


def build(settings: VectorSettings, options: ServiceOptions) -> VectorService:
    """The vector service; raises ValueError (with the sentence) when its store cannot be owned here."""
    svc = VectorService(settings, options)
    write = not settings.read_only
    default_limit = settings.search_limit

    if write:

        @svc.tool(title="Store", destructive=False)
        async def store(
            information: Annotated[str, Meta(min_length=1, description="The text to remember")],
            collection: Collection = None,
            metadata: Annotated[
                dict[str, Any] | None, Meta(description="JSON metadata stored with the text")
            ] = None,
        ) -> Stored:
            """Keep the memory for later use, when you are asked to remember something. The text is embedded and
            stored with its metadata; the collection is created when missing."""
            name = svc.collection(collection)
            st = svc.store()
            using = await st.text_vector(name, svc.embedder(), create=True)
            vector = await _embed(svc, information)
            point_id = uuid.uuid4().hex
            m = st.models
            point = m.PointStruct(
                id=point_id, vector={using: vector}, payload={"document": information, "metadata": metadata}
            )
            await st.run(st.client.upsert, name, [point], collection=name)
            return Stored(id=point_id, collection=name, information=information)

    @svc.tool(title="Find", read_only=True)
    async def find(
        query: Annotated[str, Meta(min_length=1, description="What to search for")],
        collection: Collection = None,
        filter: FilterArg = None,
        limit: Annotated[
            Limit | None, Meta(description="How many entries (default: the service's search limit, 10)")
        ] = None,
    ) -> FindResult:
        """Look up memories by meaning: the stored texts closest to the query, with their metadata and scores."""
        name = svc.collection(collection)
        st = svc.store()
        flt = to_qdrant(filter)
        using = await st.text_vector(name, svc.embedder(), create=False)
        vector = await _embed(svc, query)
        reply = await st.run(
            st.client.query_points, name, query=vector, using=using, query_filter=flt, limit=limit or default_limit,
            with_payload=True, collection=name,
        )  # fmt: skip
        entries = [
            Entry(
                id=p.id,
                score=p.score,
                document=str((p.payload or {}).get("document", "")),
                metadata=(p.payload or {}).get("metadata"),
            )
            for p in reply.points
        ]
        return FindResult(query=query, collection=name, entries=entries)

    @svc.tool(title="List Collections", read_only=True)
    async def list_collections() -> Collections:
        """The names of every collection."""
        return Collections(collections=await svc.store().list_collections())

    if write:

        @svc.tool(title="Create Collection", destructive=False)
        async def create_collection(
            collection: NewCollection,
            dimension: Annotated[
                Annotated[int, Meta(ge=1, le=65536)] | None,
                Meta(
                    description="Vector size for a raw-vector collection; omit for a text collection of this service's embedder"
                ),
            ] = None,
            distance: Literal["Cosine", "Dot", "Euclid", "Manhattan"] = "Cosine",
            vector: Annotated[
                Annotated[str, Meta(min_length=1, max_length=64)] | None,
                Meta(
                    description="A name for the vector (raw-vector collections); omit for one unnamed vector"
                ),
            ] = None,
        ) -> CollectionInfo:
            """Create a collection: without `dimension`, for store/find with this service's embedder (recorded with
            it); with `dimension`, for raw vectors (upsert_points, search_points)."""
            st = svc.store()
            if dimension is None:
                await st.text_vector(collection, svc.embedder(), create=True)
            else:
                params = VectorParams(size=dimension, distance=distance)
                await st.create(collection, {vector: params} if vector else params, None)
            return await st.info(collection)

    @svc.tool(title="Collection Info", read_only=True)
    async def collection_info(collection: Collection = None) -> CollectionInfo:
        """Points, status, vectors (size and distance) and the embedder of a collection."""
        return await svc.store().info(svc.collection(collection))

    if write:

        @svc.tool(title="Delete Collection", destructive=True, idempotent=True)
        async def delete_collection(collection: NewCollection) -> Done:
            """Delete a collection and every point in it."""
            if await svc.store().delete_collection(collection):
                return Done(status="deleted", message=f"collection '{collection}' deleted")
            return Done(status="absent", message=f"collection '{collection}' did not exist")

    @svc.tool(title="Count Points", read_only=True)
    async def count(collection: Collection = None, filter: FilterArg = None) -> Count:
        """How many points a collection holds, or how many match the filter (exact)."""
        name = svc.collection(collection)
        st = svc.store()
        flt = to_qdrant(filter)
        reply = await st.run(st.client.count, name, count_filter=flt, exact=True, collection=name)
        return Count(count=reply.count)

    if write:

        @svc.tool(title="Upsert Points", destructive=True, idempotent=True)
        async def upsert_points(
            points: Annotated[list[PointInput], Meta(min_length=1, max_length=MAX_UPSERT)],
            collection: Collection = None,
        ) -> Done:
            """Insert or replace points given as raw vectors with payloads (at most 1000 per call)."""
            name = svc.collection(collection)
            st = svc.store()
            m = st.models
            batch = [m.PointStruct(id=_id(p.id), vector=p.vector, payload=p.payload) for p in points]
            await st.run(st.client.upsert, name, batch, collection=name)
            return Done(status="completed", message=f"{len(batch)} points upserted into '{name}'")

    @svc.tool(title="Search Points", read_only=True)
    async def search_points(
        vector: Vector,
        collection: Collection = None,
        using: Annotated[
            str | None, Meta(description="The named vector to search (collections with named vectors)")
        ] = None,
        filter: FilterArg = None,
        limit: Limit = 10,
        score_threshold: float | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> Points:
        """The points nearest to a raw vector, best first, with their scores."""
        name = svc.collection(collection)
        st = svc.store()
        flt = to_qdrant(filter)
        reply = await st.run(
            st.client.query_points, name, query=vector, using=using, query_filter=flt, limit=limit,
            score_threshold=score_threshold, with_payload=with_payload, with_vectors=with_vectors, collection=name,
        )  # fmt: skip
        return Points(points=[_point(p) for p in reply.points])

    @svc.tool(title="Get Points", read_only=True)
    async def get_points(ids: Ids, collection: Collection = None, with_vectors: bool = False) -> Points:
        """The points with these ids (missing ids are left out)."""
        name = svc.collection(collection)
        st = svc.store()
        records = await st.run(
            st.client.retrieve,
            name,
            [_id(i) for i in ids],
            with_payload=True,
            with_vectors=with_vectors,
            collection=name,
        )
        return Points(points=[_point(r) for r in records])

    @svc.tool(title="Scroll Points", read_only=True)
    async def scroll(
        collection: Collection = None,
        filter: FilterArg = None,
        limit: Limit = 10,
        offset: Annotated[PointId | None, Meta(description="The next_offset of the previous page")] = None,
        with_vectors: bool = False,
    ) -> Points:
        """Page through the points (matching the filter) in id order; pass next_offset back as offset."""
        name = svc.collection(collection)
        st = svc.store()
        flt = to_qdrant(filter)
        records, next_offset = await st.run(
            st.client.scroll, name, scroll_filter=flt, limit=limit, offset=None if offset is None else _id(offset),
            with_payload=True, with_vectors=with_vectors, collection=name,
        )  # fmt: skip
        return Points(points=[_point(r) for r in records], next_offset=next_offset)

    if write:

        def selector(ids: list[int | str] | None, filter: Filter | None) -> Any:
            if (ids is None) == (filter is None):
                raise InvalidPoint("give exactly one of 'ids' or 'filter' to choose the points")
            m = svc.store().models
            if ids is not None:
                return m.PointIdsList(points=[_id(i) for i in ids])
            return m.FilterSelector(filter=to_qdrant(filter))

        @svc.tool(title="Set Payload", destructive=True, idempotent=True)
        async def set_payload(
            payload: Annotated[dict[str, Any], Meta(description="Keys to set (others are kept)")],
            collection: Collection = None,
            ids: Ids | None = None,
            filter: FilterArg = None,
        ) -> Done:
            """Set payload keys on the points chosen by ids or by a filter (other keys are kept)."""
            name = svc.collection(collection)
            st = svc.store()
            points = selector(ids, filter)
            await st.run(st.client.set_payload, name, payload, points=points, collection=name)
            return Done(status="completed", message=f"payload set in '{name}'")

        @svc.tool(title="Delete Points", destructive=True, idempotent=True)
        async def delete_points(
            collection: Collection = None, ids: Ids | None = None, filter: FilterArg = None
        ) -> Done:
            """Delete the points chosen by ids or by a filter."""
            name = svc.collection(collection)
            st = svc.store()
            points = selector(ids, filter)
            await st.run(st.client.delete, name, points_selector=points, collection=name)
            return Done(status="completed", message=f"points deleted from '{name}'")

    return svc

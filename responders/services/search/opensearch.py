"""The OpenSearch backend (opensearch-py): the same tools on a server, plus `get_mapping` and a gated
`raw_query`. Only the configured URL is ever contacted (no sniffing, no caller-supplied hosts).

The sync client runs on worker threads. OpenSearch has no transactions: a batch is written with one
bulk request and `refresh=wait_for`, so a search sees it whole once it returns, but a reader racing
the bulk request may see part of it. Hybrid mode is not offered here (it needs the k-NN plugin).
opensearch-py's exceptions are translated in `map_opensearch_errors` and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from ...errors import ToolError
from .backend import FileChunks, Page, Vectors, check_index
from .errors import BackendFailed, EmbedderMismatch, NoSuchIndex
from .outputs import Document, Field, Hit, IndexInfo, IndexName, RawOutput
from .query import Node, to_simple_query_string
from .settings import SearchSettings

if TYPE_CHECKING:
    from ...service import Service
    from .service import SearchTools

MAX_RESPONSE = 1024 * 1024
MAX_FILES = 10_000
MAPPING = {
    "properties": {
        "title": {"type": "text"},
        "text": {"type": "text"},
        "metadata": {"type": "object", "enabled": False},
        "path": {"type": "keyword"},
        "mtime_ns": {"type": "long"},
        "size": {"type": "long"},
    }
}


@contextlib.contextmanager
def map_opensearch_errors(index: str = "") -> Iterator[None]:
    import opensearchpy.exceptions as ose

    try:
        yield
    except ose.NotFoundError as exc:
        raise NoSuchIndex(index) from exc
    except ose.RequestError as exc:
        raise ToolError(f"OpenSearch refused the request: {exc.error}") from exc
    except ose.AuthenticationException as exc:
        raise BackendFailed("OpenSearch refused the credentials") from exc
    except ose.AuthorizationException as exc:
        raise BackendFailed("OpenSearch does not allow this request for the configured user") from exc
    except ose.ConnectionTimeout as exc:
        raise BackendFailed("OpenSearch did not answer in time") from exc
    except ose.ConnectionError as exc:
        raise BackendFailed("cannot reach OpenSearch at the configured URL") from exc
    except ose.TransportError as exc:
        raise BackendFailed(f"OpenSearch failed: {exc.status_code} {exc.error}") from exc


class OpenSearchBackend:
    """SearchBackend on an OpenSearch server (see the module docstring)."""

    kind = "opensearch"

    def __init__(self, client: Any, *, title_weight: float) -> None:
        self.client = client
        self.title_weight = title_weight

    async def _call(self, index: str, fn: Any, /, **kw: Any) -> Any:
        def run() -> Any:
            with map_opensearch_errors(index):
                return fn(**kw)

        return await asyncio.to_thread(run)

    async def _ensure(self, index: str) -> None:
        if not await self._call(index, self.client.indices.exists, index=index):
            import opensearchpy.exceptions as ose

            with contextlib.suppress(BackendFailed, ToolError, ose.OpenSearchException):
                await self._call(index, self.client.indices.create, index=index, body={"mappings": MAPPING})

    async def list_indices(self) -> list[IndexInfo]:
        rows = await self._call("", self.client.cat.indices, format="json")
        return sorted(
            (
                IndexInfo(name=r["index"], documents=int(r.get("docs.count") or 0))
                for r in rows
                if not r["index"].startswith(".")
            ),
            key=lambda i: i.name,
        )

    async def _bulk(self, index: str, actions: list[dict[str, Any]]) -> None:
        if not actions:
            return
        body = b"".join(msgspec.json.encode(a) + b"\n" for a in actions)
        result = await self._call(index, self.client.bulk, body=body, refresh="wait_for")
        if result.get("errors"):
            errors = [v.get("error") for item in result["items"] for v in item.values() if v.get("error")]
            raise BackendFailed(
                f"OpenSearch refused part of the batch: {errors[0] if errors else 'unknown error'}"
            )

    def _doc_actions(
        self, index: str, docs: Sequence[Document], extra: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for d in docs:
            out.append({"index": {"_index": index, "_id": d.id}})
            out.append({"title": d.title, "text": d.text, "metadata": d.metadata, **(extra or {})})
        return out

    async def index_documents(self, index: str, docs: Sequence[Document], vectors: Vectors | None) -> int:
        if vectors is not None:
            raise EmbedderMismatch("hybrid mode is not available on the OpenSearch backend")
        await self._ensure(index)
        await self._bulk(index, self._doc_actions(index, docs))
        return len(docs)

    async def search(
        self, index: str, query: Node, *, size: int, offset: int, fields: Sequence[Field], highlight: bool
    ) -> Page:
        wanted = list(fields) or ["title", "text"]
        body: dict[str, Any] = {
            "query": {
                "simple_query_string": {
                    "query": to_simple_query_string(query),
                    "fields": [f"title^{self.title_weight:g}" if f == "title" else f for f in wanted],
                    "default_operator": "and",
                }
            },
            "from": offset,
            "size": size,
            "track_total_hits": True,
            "_source": ["title", "metadata"] + ([] if highlight else ["text"]),
        }
        if highlight:
            body["highlight"] = {
                "fields": {f: {} for f in wanted},
                "pre_tags": ["<mark>"],
                "post_tags": ["</mark>"],
            }
        r = await self._call(index, self.client.search, index=index, body=body)
        hits = []
        for h in r["hits"]["hits"]:
            src = h.get("_source") or {}
            hit = Hit(
                id=h["_id"],
                score=float(h.get("_score") or 0.0),
                title=src.get("title") or "",
                metadata=src.get("metadata"),
            )
            if highlight:
                hit.highlights = {k: list(v) for k, v in (h.get("highlight") or {}).items()}
            else:
                hit.excerpt = (src.get("text") or "")[:300]
            hits.append(hit)
        return Page(total=int(r["hits"]["total"]["value"]), hits=hits)

    async def count(self, index: str, query: Node | None) -> int:
        body = None
        if query is not None:
            body = {
                "query": {
                    "simple_query_string": {
                        "query": to_simple_query_string(query),
                        "fields": ["title", "text"],
                        "default_operator": "and",
                    }
                }
            }
        r = await self._call(index, self.client.count, index=index, body=body)
        return int(r["count"])

    async def get_documents(self, index: str, ids: Sequence[str]) -> list[Document]:
        r = await self._call(index, self.client.mget, index=index, body={"ids": list(ids)})
        out = []
        for d in r["docs"]:
            if d.get("found"):
                src = d["_source"]
                out.append(
                    Document(
                        id=d["_id"],
                        title=src.get("title") or "",
                        text=src.get("text") or "",
                        metadata=src.get("metadata"),
                    )
                )
        return out

    async def delete_documents(self, index: str, ids: Sequence[str]) -> int:
        r = await self._call(
            index,
            self.client.delete_by_query,
            index=index,
            body={"query": {"ids": {"values": list(ids)}}},
            refresh=True,
        )
        return int(r.get("deleted", 0))

    async def delete_index(self, index: str) -> bool:
        try:
            await self._call(index, self.client.indices.delete, index=index)
        except NoSuchIndex:
            return False
        return True

    async def file_states(self, index: str) -> dict[str, tuple[int, int]]:
        body = {
            "query": {"exists": {"field": "mtime_ns"}},
            "collapse": {"field": "path"},
            "_source": ["path", "mtime_ns", "size"],
            "size": MAX_FILES,
        }
        try:
            r = await self._call(index, self.client.search, index=index, body=body)
        except NoSuchIndex:
            return {}
        return {
            h["_source"]["path"]: (int(h["_source"]["mtime_ns"]), int(h["_source"]["size"]))
            for h in r["hits"]["hits"]
        }

    async def apply_files(self, index: str, changed: Sequence[FileChunks], removed: Sequence[str]) -> int:
        if any(f.vectors is not None for f in changed):
            raise EmbedderMismatch("hybrid mode is not available on the OpenSearch backend")
        await self._ensure(index)
        paths = [*removed, *(f.path for f in changed)]
        if paths:
            await self._call(
                index,
                self.client.delete_by_query,
                index=index,
                body={"query": {"terms": {"path": paths}}},
                refresh=True,
            )
        actions: list[dict[str, Any]] = []
        for f in changed:
            actions += self._doc_actions(
                index, f.docs, {"path": f.path, "mtime_ns": f.mtime_ns, "size": f.size}
            )
        await self._bulk(index, actions)
        return sum(len(f.docs) for f in changed)

    async def nearest(
        self, index: str, vector: Sequence[float], model: str, k: int
    ) -> list[tuple[str, float]]:
        raise EmbedderMismatch("hybrid mode is not available on the OpenSearch backend")

    async def get_mapping(self, index: str) -> dict[str, Any]:
        r = await self._call(index, self.client.indices.get_mapping, index=index)
        return dict(r)

    async def raw_query(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self._call(index, self.client.search, index=index, body=body)
        return dict(r)


@contextlib.asynccontextmanager
async def opensearch_backend(settings: SearchSettings) -> AsyncIterator[OpenSearchBackend]:
    """A client for `settings.url` only (sniffing off), closed on exit."""
    from opensearchpy import OpenSearch

    auth = None
    if settings.username:
        auth = (settings.username, os.environ.get(settings.password_env, "") if settings.password_env else "")
    client = OpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        timeout=settings.timeout,
        sniff_on_start=False,
        sniff_on_connection_fail=False,
        sniffer_timeout=None,
    )
    try:
        yield OpenSearchBackend(client, title_weight=settings.title_weight)
    finally:
        await asyncio.to_thread(client.close)


def _capped(query_dsl: dict[str, Any]) -> dict[str, Any]:
    body = dict(query_dsl)
    size = body.get("size", 10)
    offset = body.get("from", 0)
    if not isinstance(size, int) or not 0 <= size <= 100:
        raise ToolError("size must be an integer from 0 to 100")
    if not isinstance(offset, int) or not 0 <= offset <= 10_000 - 100:
        raise ToolError("from must be an integer from 0 to 9900")
    body["size"] = size
    for key in ("scroll", "pit"):
        if key in body:
            raise ToolError(f"{key!r} is not allowed in raw_query")
    return body


def _sized(index: str, response: dict[str, Any]) -> RawOutput:
    if len(msgspec.json.encode(response)) > MAX_RESPONSE:
        raise ToolError(
            f"the response is larger than {MAX_RESPONSE} bytes; lower size or select fields with _source"
        )
    return RawOutput(index=index, response=response)


def register_opensearch_tools(svc: Service, tools: SearchTools, settings: SearchSettings) -> None:
    """`get_mapping`, and `raw_query` when `allow_raw_query` is set."""

    def os_backend() -> OpenSearchBackend:
        backend = tools.backend
        assert isinstance(backend, OpenSearchBackend)
        return backend

    @svc.tool(title="Get Mapping", read_only=True)
    async def get_mapping(index: IndexName) -> RawOutput:
        """The OpenSearch mapping (field types) of an index."""
        return _sized(index, await os_backend().get_mapping(check_index(index)))

    if settings.allow_raw_query:

        @svc.tool(title="Raw Query", read_only=True)
        async def raw_query(
            index: IndexName,
            query_dsl: Annotated[
                dict[str, Any],
                Meta(description="An OpenSearch search body (query, aggs, sort, _source, size ≤ 100)"),
            ],
        ) -> RawOutput:
            """Run an OpenSearch query DSL search body against one index; size is capped at 100 and the
            response at 1 MB."""
            return _sized(index, await os_backend().raw_query(check_index(index), _capped(query_dsl)))

"""The OpenSearch backend: its tool set and guards without a server, and the same tool shapes against a
real server when OPENSEARCH_URL is set (no OpenSearch server can run on this machine: no package ships one)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from responders.errors import ToolError
from responders.plugin import ServiceOptions
from responders.services.search import Document, SearchSettings, build
from responders.services.search.errors import NoSuchIndex
from responders.services.search.opensearch import _capped, opensearch_backend
from responders.services.search.outputs import PathsOutput, SearchOutput

from .conftest import Tools
from .corpus import CORPUS

pytestmark = pytest.mark.anyio
URL = os.environ.get("OPENSEARCH_URL", "")


def test_tools_and_gates(tmp_path: Path) -> None:
    """get_mapping always, raw_query only when allowed, write tools unless read-only; hybrid is refused."""
    opts = ServiceOptions(name="search", state_dir=tmp_path)
    plain = build(SearchSettings(backend="opensearch", url="http://127.0.0.1:9"), opts)
    assert {"get_mapping", "index_documents"} <= set(plain.tools) and "raw_query" not in plain.tools
    raw = build(
        SearchSettings(backend="opensearch", url="http://127.0.0.1:9", allow_raw_query=True, read_only=True),
        opts,
    )
    assert "raw_query" in raw.tools and "index_documents" not in raw.tools
    fts = build(SearchSettings(), opts)
    assert "get_mapping" not in fts.tools
    with pytest.raises(ValueError):
        build(SearchSettings(backend="opensearch"), opts)
    with pytest.raises(ValueError):
        build(SearchSettings(backend="opensearch", url="http://127.0.0.1:9", hybrid=True), opts)


def test_raw_query_sizes_are_capped() -> None:
    """raw_query refuses size > 100, deep from, scroll and pit; a missing size becomes 10."""
    assert _capped({"query": {"match_all": {}}})["size"] == 10
    bad_bodies: list[dict[str, Any]] = [
        {"size": 101},
        {"size": "5"},
        {"from": 20_000},
        {"scroll": "1m"},
        {"pit": {}},
    ]
    for bad in bad_bodies:
        with pytest.raises(ToolError):
            _capped(bad)


async def test_only_the_configured_url_is_contacted() -> None:
    """The client knows exactly one host, the configured one, and never sniffs for others."""
    async with opensearch_backend(SearchSettings(backend="opensearch", url="http://127.0.0.1:9")) as b:
        transport = b.client.transport
        assert [(h["host"], h["port"]) for h in transport.hosts] == [("127.0.0.1", 9)]
        assert not transport.sniff_on_start and not transport.sniff_on_connection_fail


@pytest.fixture
async def live(files: Path) -> AsyncIterator[Tools]:
    if not URL:
        pytest.skip(
            "no OpenSearch server: set OPENSEARCH_URL (none can run here: no package ships the server)"
        )
    svc = build(
        SearchSettings(
            backend="opensearch",
            url=URL,
            allow_raw_query=True,
            roots=[str(files / "root")],
            verify_certs=False,
        ),
        ServiceOptions(name="search", state_dir=files / "state"),
    )
    async with svc.open(None):  # type: ignore[arg-type]
        yield Tools(svc)


async def test_live_opensearch_same_tool_shapes(live: Tools) -> None:
    """Against a real server: index, search with highlights, count, get, mapping, raw query, delete."""
    index = "mcp-nats-test-" + uuid.uuid4().hex[:8]
    try:
        await live(
            "index_documents",
            index=index,
            documents=[Document(id=r["id"], title=r["title"], text=r["text"]) for r in CORPUS],
        )
        out = await live("search", index=index, query="goroutines")
        assert isinstance(out, SearchOutput) and out.hits[0].id == "golang"
        assert "<mark>" in out.hits[0].highlights["text"][0]  # type: ignore[index]
        assert (await live("count", index=index)).count == len(CORPUS)  # type: ignore[attr-defined]
        assert (await live("get_document", index=index, id="kafka")).document.title == "Apache Kafka"  # type: ignore[attr-defined]
        mapping = await live("get_mapping", index=index)
        assert index in mapping.response  # type: ignore[attr-defined]
        raw = await live(
            "raw_query", index=index, query_dsl={"query": {"match": {"text": "espresso"}}, "size": 1}
        )
        assert raw.response["hits"]["hits"][0]["_id"] == "espresso"  # type: ignore[attr-defined]
        assert (await live("delete_documents", index=index, ids=["kafka"])).deleted == 1  # type: ignore[attr-defined]
        first = await live("index_paths", index=index + "-files", paths=["docs"])
        again = await live("index_paths", index=index + "-files", paths=["docs"])
        assert isinstance(first, PathsOutput) and isinstance(again, PathsOutput)
        assert first.files_indexed == 3 and again.files_unchanged == 3
    finally:
        for name in (index, index + "-files"):
            try:
                await live("delete_index", index=name)
            except NoSuchIndex:
                pass

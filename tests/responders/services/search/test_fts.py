"""The FTS5 backend through the search tools, on a real SQLite file (no bus): ranking, highlights,
the query language, documents, and readers that never see half a batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from responders.errors import ToolError
from responders.services.search import Document
from responders.services.search.errors import BadIndexName, BadQuery, NoSuchIndex
from responders.services.search.outputs import SearchOutput

from .conftest import Tools, open_search
from .corpus import CORPUS, EXPECTED_TOP

pytestmark = pytest.mark.anyio


def docs(rows: list[dict[str, str]]) -> list[Document]:
    return [Document(id=r["id"], title=r.get("title", ""), text=r["text"]) for r in rows]


async def ids(search: Tools, query: str, **kw: Any) -> list[str]:
    out = await search("search", index="kb", query=query, **kw)
    assert isinstance(out, SearchOutput)
    return [h.id for h in out.hits]


@pytest.fixture
async def kb(search: Tools) -> Tools:
    await search("index_documents", index="kb", documents=docs(CORPUS))
    return search


async def test_bm25_puts_the_expected_document_first(kb: Tools) -> None:
    """On a known corpus, each query's clearly best document ranks first."""
    for query, top in EXPECTED_TOP.items():
        got = await ids(kb, query)
        assert got and got[0] == top, (query, got)


async def test_a_title_match_outranks_the_same_word_in_text(kb: Tools) -> None:
    """The title weight: 'sqlite' in a title beats documents that only mention it in the text."""
    got = await ids(kb, "sqlite")
    assert set(got[:2]) == {"sqlite", "fts5"}


async def test_highlights_mark_the_matched_terms(kb: Tools) -> None:
    """highlight=true returns fragments with <mark>…</mark> around the matched words (stemmed too)."""
    out = await kb("search", index="kb", query="goroutine")
    assert isinstance(out, SearchOutput)
    hit = out.hits[0]
    assert hit.id == "golang"
    assert "<mark>goroutines</mark>" in hit.highlights["text"][0]  # type: ignore[index]
    plain = await kb("search", index="kb", query="goroutine", highlight=False)
    assert isinstance(plain, SearchOutput)
    assert "<mark>" not in str(plain.hits[0].excerpt) and "goroutines" in str(plain.hits[0].excerpt)


async def test_phrase_prefix_and_boolean_queries(kb: Tools) -> None:
    """Phrases need adjacent words, prefixes match word starts, OR/NOT/parentheses combine them."""
    assert set(await ids(kb, '"event loop"')) == {"tokio", "asyncio"}
    assert "eventsourcing" in await ids(kb, "event loop")  # as words, not a phrase
    assert set(await ids(kb, "goroutin*")) == {"golang"}
    assert set(await ids(kb, "kafka OR espresso")) == {"kafka", "espresso"}
    assert set(await ids(kb, '"event loop" NOT rust')) == {"asyncio"}
    assert set(await ids(kb, '"event loop" -python')) == {"tokio"}
    assert set(await ids(kb, "(kafka OR nats) AND jetstream")) == {"nats"}
    assert await ids(kb, "database", fields=["title"]) == []
    assert set(await ids(kb, "database", fields=["text"])) == {"sqlite", "postgres"}


async def test_backend_syntax_cannot_be_smuggled_in(kb: Tools) -> None:
    """FTS5 column filters and NEAR are words to us, and a broken query is a BadQuery, not a SQL error."""
    assert await ids(kb, "title:sqlite") == await ids(kb, "title sqlite")
    assert await ids(kb, "NEAR(event loop)") == await ids(kb, "NEAR event loop")
    for bad in ('"unclosed', "(kafka", "NOT kafka", "kafka )", "***"):
        with pytest.raises(BadQuery):
            await kb("search", index="kb", query=bad)


async def test_paging_count_and_totals(kb: Tools) -> None:
    """from/size page through the same ranking; total and count agree."""
    everything = await ids(kb, "the OR a OR is", size=100)
    assert len(everything) >= 4
    pages = (await ids(kb, "the OR a OR is", size=2)) + (await ids(kb, "the OR a OR is", size=2, from_=2))
    assert pages == everything[:4]
    counted = await kb("count", index="kb", query="the OR a OR is")
    assert counted.count == len(everything)  # type: ignore[attr-defined]
    assert (await kb("count", index="kb")).count == len(CORPUS)  # type: ignore[attr-defined]


async def test_documents_are_replaced_fetched_and_deleted(kb: Tools) -> None:
    """Re-indexing an id replaces it (old words gone); get_document, delete_documents, delete_index, list_indices."""
    await kb(
        "index_documents",
        index="kb",
        documents=[Document(id="kafka", title="Kafka", text="now about wombats")],
    )
    assert await ids(kb, "partitioned") == []
    assert await ids(kb, "wombats") == ["kafka"]
    got = await kb("get_document", index="kb", id="kafka")
    assert got.document.text == "now about wombats"  # type: ignore[attr-defined]
    assert (await kb("delete_documents", index="kb", ids=["kafka", "nope"])).deleted == 1  # type: ignore[attr-defined]
    with pytest.raises(ToolError):
        await kb("get_document", index="kb", id="kafka")
    listed = await kb("list_indices")
    assert [(i.name, i.documents) for i in listed.indices] == [("kb", len(CORPUS) - 1)]  # type: ignore[attr-defined]
    await kb("delete_index", index="kb")
    with pytest.raises(NoSuchIndex):
        await kb("search", index="kb", query="wombats")
    with pytest.raises(NoSuchIndex):
        await kb("delete_index", index="kb")
    with pytest.raises(BadIndexName):
        await kb("index_documents", index="../x", documents=docs(CORPUS[:1]))


async def test_readers_never_see_half_a_batch(search: Tools) -> None:
    """While batches of 50 documents are written, every count a reader takes is a whole number of batches."""
    batch = 50

    async def writer() -> None:
        for b in range(8):
            rows = [Document(id=f"{b}-{i}", text=f"marker word {b} {i}") for i in range(batch)]
            await search("index_documents", index="live", documents=rows)

    async def reader(seen: list[int]) -> None:
        while len(seen) < 40:
            try:
                seen.append((await search("count", index="live", query="marker")).count)  # type: ignore[attr-defined]
            except NoSuchIndex:
                seen.append(0)
            await asyncio.sleep(0)

    seen: list[int] = []
    with __import__("anyio").fail_after(60):
        await asyncio.gather(writer(), reader(seen))
    assert all(c % batch == 0 for c in seen), seen
    assert (await search("count", index="live")).count == 8 * batch  # type: ignore[attr-defined]


async def test_a_second_service_on_the_same_file_sees_the_first_ones_writes(
    files: Path, search: Tools
) -> None:
    """Two services (as two instances would) share one index file in WAL mode."""
    await search("index_documents", index="shared", documents=docs(CORPUS[:3]))
    async for other in open_search(files):
        assert (await other("count", index="shared")).count == 3  # type: ignore[attr-defined]
        await other("index_documents", index="shared", documents=docs(CORPUS[3:5]))
    assert (await search("count", index="shared")).count == 5  # type: ignore[attr-defined]

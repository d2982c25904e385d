"""Hybrid mode: reciprocal rank fusion, and BM25 + the shared default embedder on a real index."""

from __future__ import annotations

from pathlib import Path

import pytest

from responders.services.search import Document
from responders.services.search.errors import EmbedderMismatch
from responders.services.search.hybrid import fuse
from responders.services.search.outputs import SearchOutput

from .conftest import open_search
from .corpus import CORPUS

pytestmark = pytest.mark.anyio


def test_rrf_rewards_agreement_between_rankings() -> None:
    """A document both rankings place high beats one only a single ranking places first."""
    fused = [d for d, _ in fuse(["a", "b", "c"], ["b", "d", "a"])]
    assert fused[0] == "b" and fused[1] == "a" and set(fused) == {"a", "b", "c", "d"}
    assert fuse([], []) == []


async def test_hybrid_without_an_embedder_is_refused(files: Path) -> None:
    """mode=hybrid on a service started without hybrid = true says what to do."""
    async for t in open_search(files):
        await t("index_documents", index="kb", documents=[Document(id="a", text="x y")])
        with pytest.raises(EmbedderMismatch):
            await t("search", index="kb", query="x", mode="hybrid")


async def test_hybrid_finds_by_meaning_what_words_miss(files: Path) -> None:
    """A paraphrase with no word in common still finds its document in hybrid mode; BM25 alone finds nothing."""
    async for t in open_search(files, hybrid=True):
        await t(
            "index_documents",
            index="kb",
            documents=[Document(id=r["id"], title=r["title"], text=r["text"]) for r in CORPUS],
        )
        bm25 = await t("search", index="kb", query="caffeinated drink")
        assert isinstance(bm25, SearchOutput) and bm25.hits == []
        out = await t("search", index="kb", query="caffeinated drink", mode="hybrid", size=3)
        assert isinstance(out, SearchOutput) and out.hits[0].id == "espresso"
        listed = await t("list_indices")
        assert listed.indices[0].embedder  # type: ignore[attr-defined]
    async for plain in open_search(files):
        with pytest.raises(EmbedderMismatch):
            await plain("index_documents", index="kb", documents=[Document(id="x", text="no vector")])

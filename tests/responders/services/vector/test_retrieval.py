"""Retrieval quality of store + find with the default embedder on the corpus the tests ship."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from responders.services.vector.outputs import FindResult

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).parents[3] / "data" / "vector_corpus.json"


async def test_paraphrased_queries_find_their_document(make_vector: Any) -> None:
    """36 documents stored with `store`, 14 paraphrased queries through `find`: recall@3 is at least 0.9 (and the filter on topic keeps it)."""
    corpus = json.loads(CORPUS.read_text())
    assert len(corpus["documents"]) >= 30 and len(corpus["queries"]) >= 10
    async with make_vector(collection="corpus") as call:
        for doc in corpus["documents"]:
            await call("store", information=doc["text"], metadata={"id": doc["id"], "topic": doc["topic"]})
        hits1 = hits3 = 0
        for q in corpus["queries"]:
            found: FindResult = await call("find", query=q["query"], limit=3)
            ids = [e.metadata["id"] for e in found.entries if e.metadata]
            assert len(ids) == 3 and found.entries[0].score >= found.entries[-1].score
            hits1 += ids[0] == q["expect"]
            hits3 += q["expect"] in ids
        n = len(corpus["queries"])
        assert hits3 / n >= 0.9, f"recall@3 {hits3}/{n}, recall@1 {hits1}/{n}"
        # the same query restricted to the right topic still finds it first
        topic = {d["id"]: d["topic"] for d in corpus["documents"]}
        q = corpus["queries"][0]
        found = await call(
            "find",
            query=q["query"],
            filter={"must": [{"key": "metadata.topic", "match": topic[q["expect"]]}]},
        )
        assert found.entries and found.entries[0].metadata == {"id": q["expect"], "topic": topic[q["expect"]]}
        assert all(e.metadata and e.metadata["topic"] == topic[q["expect"]] for e in found.entries)

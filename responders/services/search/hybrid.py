"""Reciprocal rank fusion: one ranking out of BM25's and the embedder's (Cormack et al., k = 60)."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60


def fuse(*rankings: Sequence[str], k: int = RRF_K) -> list[tuple[str, float]]:
    """Ids ranked by the sum of 1 / (k + rank) over the rankings they appear in (rank from 1), best first;
    ties keep the order of first appearance."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])

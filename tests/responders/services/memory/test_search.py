"""Relevance ranking of memory search, on plain entities (no bus)."""

from __future__ import annotations

from responders.services.memory.graph import Relation as Rel
from responders.services.memory.graph import (
    StoredEntity,
    decode_cursor,
    encode_cursor,
    entity_key,
    relation_key,
)
from responders.services.memory.search import rank


def e(name: str, etype: str = "thing", *obs: str) -> StoredEntity:
    return StoredEntity(name=name, entityType=etype, observations=list(obs))


GRAPH = [
    e("Notes", "document", "mentions python once"),
    e("Python", "language", "created by Guido"),
    e("Guido", "person", "wrote Python", "python BDFL"),
    e("Spanish class", "event", "[CORRECTION] moved to Tuesday"),
]


def test_one_word_matches_what_a_substring_search_matches() -> None:
    """A single word finds exactly the entities whose name, type or an observation contains it, case-insensitively (the reference's rule)."""
    for query in ("pan", "PYTHON", "[correction]", "person", "o"):
        q = query.lower()
        expected = {
            x.name
            for x in GRAPH
            if q in x.name.lower() or q in x.entityType.lower() or any(q in o.lower() for o in x.observations)
        }
        assert {x.name for x in rank(GRAPH, query)} == expected, query


def test_name_matches_rank_above_observation_matches() -> None:
    """An exact name beats many observation hits, which beat one."""
    assert [x.name for x in rank(GRAPH, "python")] == ["Python", "Guido", "Notes"]


def test_several_words_match_in_any_order_and_all_must_occur() -> None:
    """Every word must occur somewhere; order and adjacency do not matter."""
    assert [x.name for x in rank(GRAPH, "BDFL wrote")] == ["Guido"]
    assert rank(GRAPH, "python tuesday") == []


def test_an_empty_query_returns_everything_in_graph_order() -> None:
    """The empty query matches every entity, as the reference's substring test does, keeping graph order."""
    assert rank(GRAPH, "") == GRAPH
    assert rank(GRAPH, "   ") == GRAPH


def test_keys_are_stable_and_cursor_round_trips() -> None:
    """Keys depend only on the names (and relation type); a cursor decodes to what was encoded."""
    assert entity_key("Ada") == entity_key("Ada") != entity_key("ada")
    assert entity_key("Ada").startswith("e.") and len(entity_key("Ada")) == 34
    r1 = relation_key(Rel(from_="a", to="b", relationType="knows"))
    assert r1 != relation_key(Rel(from_="b", to="a", relationType="knows")) and r1.count(".") == 3
    assert decode_cursor(encode_cursor(1234.5, "n/ä")) == (1234.5, "n/ä")

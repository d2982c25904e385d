"""Every filter condition against an embedded store (match, match_any, match_except, range,
is_empty both ways, nested must/should/must_not), and malformed filters refused by name before
Qdrant sees them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from responders.services.vector.errors import InvalidFilter
from responders.services.vector.filters import Filter, to_qdrant

pytestmark = pytest.mark.anyio

POINTS = [
    {"id": 1, "vector": [1.0, 0.0], "payload": {"color": "red", "n": 1, "tags": ["a"], "ok": True}},
    {"id": 2, "vector": [0.9, 0.1], "payload": {"color": "blue", "n": 5, "tags": [], "ok": False}},
    {"id": 3, "vector": [0.5, 0.5], "payload": {"color": "green", "n": 10, "ok": True}},
    {"id": 4, "vector": [0.1, 0.9], "payload": {"color": "red", "n": 20, "tags": ["b", "c"], "size": 7}},
    {"id": 5, "vector": [0.0, 1.0], "payload": {"color": "blue", "n": 30, "tags": ["a", "c"], "size": None}},
]

CASES: list[tuple[str, dict[str, Any], set[int]]] = [
    ("match string", {"must": [{"key": "color", "match": "red"}]}, {1, 4}),
    ("match integer", {"must": [{"key": "n", "match": 5}]}, {2}),
    ("match boolean", {"must": [{"key": "ok", "match": True}]}, {1, 3}),
    ("match in an array", {"must": [{"key": "tags", "match": "c"}]}, {4, 5}),
    ("match_any strings", {"must": [{"key": "color", "match_any": ["green", "blue"]}]}, {2, 3, 5}),
    ("match_any integers", {"must": [{"key": "n", "match_any": [1, 30]}]}, {1, 5}),
    ("match_except", {"must": [{"key": "color", "match_except": ["red", "blue"]}]}, {3}),
    ("range gte lt", {"must": [{"key": "n", "range": {"gte": 5, "lt": 30}}]}, {2, 3, 4}),
    ("range gt lte", {"must": [{"key": "n", "range": {"gt": 5, "lte": 30}}]}, {3, 4, 5}),
    ("is_empty true", {"must": [{"key": "tags", "is_empty": True}]}, {2, 3}),
    ("is_empty false", {"must": [{"key": "tags", "is_empty": False}]}, {1, 4, 5}),
    ("is_empty of null", {"must": [{"key": "size", "is_empty": True}]}, {1, 2, 3, 5}),
    ("should", {"should": [{"key": "n", "match": 1}, {"key": "n", "match": 10}]}, {1, 3}),
    ("must_not", {"must_not": [{"key": "color", "match": "red"}]}, {2, 3, 5}),
    (
        "nested group",
        {
            "must": [
                {"should": [{"key": "color", "match": "red"}, {"key": "color", "match": "green"}]},
                {"must_not": [{"key": "n", "range": {"gt": 15}}]},
            ]
        },
        {1, 3},
    ),
    (
        "must and must_not",
        {"must": [{"key": "tags", "match": "a"}], "must_not": [{"key": "n", "range": {"lt": 2}}]},
        {5},
    ),
]


async def test_every_condition_selects_exactly_its_points(make_vector: Any) -> None:
    """Each condition is applied by count, scroll and search_points alike and selects exactly the expected ids."""
    async with make_vector() as call:
        await call("create_collection", collection="f", dimension=2, distance="Dot")
        await call("upsert_points", collection="f", points=POINTS)
        for name, flt, expected in CASES:
            counted = await call("count", collection="f", filter=flt)
            scrolled = await call("scroll", collection="f", filter=flt, limit=100)
            searched = await call("search_points", collection="f", vector=[1.0, 1.0], filter=flt, limit=100)
            assert counted.count == len(expected), name
            assert {p.id for p in scrolled.points} == expected, name
            assert {p.id for p in searched.points} == expected, name


def _nest(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"key": "a", "match": 1}
    for _ in range(levels):
        node = {"must": [node]}
    return node


BAD: list[tuple[dict[str, Any], str]] = [
    ({}, "filter has no must, should or must_not"),
    ({"must": []}, "filter.must is an empty list"),
    ({"must": [{"key": "a"}]}, "filter.must[0] needs exactly one of"),
    ({"must": [{"key": "a", "match": 1, "range": {"gt": 1}}]}, "filter.must[0] needs exactly one of"),
    ({"must": [{"match": 1}]}, "filter.must[0] 'match' needs a 'key'"),
    ({"must": [{"key": "a", "must": [{"key": "b", "match": 1}]}]}, "cannot also hold 'must'"),
    ({"should": [{"key": "a", "range": {}}]}, "filter.should[0].range needs at least one of"),
    ({"must_not": [{"key": "a", "match_any": []}]}, "filter.must_not[0].match_any is an empty list"),
    ({"must": [{"key": "a", "match_any": ["x", 1]}]}, "mixes types"),
    (_nest(9), "deeper than 8"),
    ({"should": [{"key": f"k{i}", "match": i} for i in range(101)]}, "more than 100 conditions"),
]


@pytest.mark.parametrize(("raw", "says"), BAD)
def test_malformed_filters_are_refused_naming_the_part(raw: dict[str, Any], says: str) -> None:
    """A malformed filter raises InvalidFilter whose sentence names where it is wrong."""
    with pytest.raises(InvalidFilter) as info:
        to_qdrant(msgspec.convert(raw, Filter))
    assert says in str(info.value)


def test_eight_levels_are_allowed() -> None:
    """A filter nested exactly 8 groups deep (the limit) is accepted."""
    assert to_qdrant(msgspec.convert(_nest(8), Filter)) is not None


def test_unknown_members_are_refused_by_the_schema() -> None:
    """A condition with a member outside the documented shape (a typo) fails decoding, naming it."""
    with pytest.raises(msgspec.ValidationError, match="maatch"):
        msgspec.convert({"must": [{"key": "a", "maatch": 1}]}, Filter)

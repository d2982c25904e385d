"""The neo4j service's pure logic: credentials out of the URL, JSON-safe driver values, the error boundary."""

from __future__ import annotations

from neo4j.spatial import CartesianPoint
from neo4j.time import Date, DateTime, Duration

from responders.services.neo4j import split_auth
from responders.services.neo4j import to_json as neo_json


def test_split_auth_takes_credentials_out_of_the_url() -> None:
    """The Neo4j URL the driver gets has no credentials; they become its auth tuple."""
    assert split_auth("neo4j://neo:p%3Aw@graph:7687/x") == ("neo4j://graph:7687/x", ("neo", "p:w"))
    assert split_auth("bolt://graph:7687") == ("bolt://graph:7687", None)


def test_neo4j_values_are_json_safe() -> None:
    """Temporal values ISO 8601, points as coordinates, long lists left out with a note, NaN spelled."""
    assert neo_json(DateTime(2026, 1, 2, 3, 4, 5), 128) == "2026-01-02T03:04:05.000000000"
    assert neo_json(Date(2026, 1, 2), 128) == "2026-01-02" and neo_json(Duration(days=1), 128) == "P1D"
    assert neo_json(CartesianPoint((1.0, 2.0)), 128) == {"srid": 7203, "x": 1.0, "y": 2.0}
    assert "left out" in neo_json(list(range(128)), 128) and neo_json([1, 2], 128) == [1, 2]
    assert neo_json({"a": float("nan")}, 128) == {"a": "NaN"}

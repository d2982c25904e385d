"""The redis service's pure logic: glob allowlists as Redis matches them, index windows, budgets, errors."""

from __future__ import annotations

import neo4j.exceptions as nx
import pytest
import redis.exceptions as rx

from responders.errors import ToolError
from responders.services.dsn import Secrets
from responders.services.neo4j.errors import map_neo4j_errors
from responders.services.redis import Allowlist, glob_to_regex
from responders.services.redis.errors import map_redis_errors
from responders.services.redis.reads import Budget, _window


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("app:*", ["app:", "app:1", "app:a:b"], ["xapp:1", "ap:1"]),
        ("cfg:[ab]", ["cfg:a", "cfg:b"], ["cfg:c", "cfg:ab"]),
        ("cfg:[^a]", ["cfg:b"], ["cfg:a"]),
        ("k?", ["k1", "kk"], ["k", "k12"]),
        ("lit\\*", ["lit*"], ["lit1"]),
        ("r[a-c]x", ["rbx"], ["rdx"]),
        ("a.b", ["a.b"], ["axb"]),
    ],
)
def test_redis_globs_match_like_redis(pattern: str, yes: list[str], no: list[str]) -> None:
    """Allowlist patterns match exactly what Redis's MATCH would: *, ?, classes, negation, ranges, escapes, literal dots."""
    rx_ = glob_to_regex(pattern)
    assert all(rx_.fullmatch(k) for k in yes) and not any(rx_.fullmatch(k) for k in no)
    assert Allowlist([]).allows("anything") and not Allowlist([pattern]).allows(no[0])


def test_redis_window_and_budget() -> None:
    """Index windows follow Redis's negative-index rules and never exceed the cap; the budget stops at items or bytes."""
    assert _window(0, -1, 10, 100) == (0, 9, False)
    assert _window(-3, -1, 10, 100) == (7, 9, False)
    assert _window(0, -1, 10, 4) == (0, 3, True)
    assert _window(5, 2, 10, 4)[1] < 5
    b = Budget(items=3, size=1000)
    assert [b.take("x") for _ in range(4)] == [True, True, True, False]
    b = Budget(items=100, size=20)
    assert b.take("a" * 10) and not b.take("b" * 10)


def test_redis_and_neo4j_errors_become_sentences() -> None:
    """redis-py and neo4j driver failures become ToolErrors; the password in a message is scrubbed."""
    with (
        pytest.raises(ToolError, match="wrong type"),
        map_redis_errors(Secrets("redis://:pw1234@h"), service="r", timeout_s=1),
    ):
        raise rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    with (
        pytest.raises(ToolError) as info,
        map_redis_errors(Secrets("redis://:pw1234@h"), service="r", timeout_s=1),
    ):
        raise rx.ConnectionError("cannot connect with pw1234")
    assert "pw1234" not in str(info.value) and "retry" in str(info.value)
    with (
        pytest.raises(ToolError, match="cannot reach Neo4j"),
        map_neo4j_errors(Secrets("neo4j://a:b@h"), service="n", timeout_s=1),
    ):
        raise nx.ServiceUnavailable("Unable to retrieve routing information")

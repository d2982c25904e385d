"""The query language: parsed once, rendered quoted for FTS5 and OpenSearch."""

from __future__ import annotations

import pytest

from responders.services.search.errors import BadQuery
from responders.services.search.query import parse, positive_terms, to_fts5, to_simple_query_string


@pytest.mark.parametrize(
    ("query", "fts5", "simple"),
    [
        ("rust async", '("rust" AND "async")', "(rust + async)"),
        ('"event loop" tok*', '("event loop" AND "tok"*)', '("event loop" + tok*)'),
        ("a OR b", '("a" OR "b")', "(a | b)"),
        ("a NOT b", '(("a") NOT "b")', "(a + -b)"),
        ('say "he""llo"', '("say" AND "he" AND "llo")', '(say + "he" + "llo")'),
        ("C++ x", '("C++" AND "x")', "(C\\+\\+ + x)"),
        ("title:x", '"title:x"', "title:x"),
    ],
)
def test_rendering_quotes_every_term(query: str, fts5: str, simple: str) -> None:
    """Each backend gets the same tree, with terms quoted or escaped so no backend operator leaks through."""
    node = parse(query)
    assert to_fts5(node) == fts5
    assert to_simple_query_string(node) == simple


@pytest.mark.parametrize(
    "query", ["", "   ", '"open', "(a", "a )", "NOT a", "-a", "***", '""', "a OR", "x" * 3000]
)
def test_malformed_queries_are_bad_queries(query: str) -> None:
    """Empty, unbalanced, all-negative, wordless or overlong queries raise BadQuery."""
    with pytest.raises(BadQuery):
        parse(query)


def test_positive_terms_leave_out_negations() -> None:
    """The words a hybrid query embeds are the ones that must or may match, never the excluded ones."""
    assert positive_terms(parse('(rust OR go) "event loop" -java')) == ["rust", "go", "event loop"]

"""The query language of `search` and `count`, parsed once and rendered for each backend.

    rust async            both words (AND is implied)
    "event loop"          a phrase
    tok*                  a prefix
    rust OR go            either
    rust NOT unsafe       rust without unsafe (also: rust -unsafe)
    (rust OR go) AND web  grouping

Operators are upper case (lower-case `and`/`or`/`not` are words). Every term reaches the backend
quoted, so no backend syntax (FTS5 column filters, NEAR, Lucene ranges) can be smuggled in, and a
query that does not parse is a BadQuery naming the problem rather than a backend error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import BadQuery

MAX_QUERY = 2000
MAX_TERMS = 64
_TOKEN = re.compile(r'\s*(?:(\()|(\))|"([^"]*)("?)|(-)(?=[^\s)])|([^\s()"]+))')
_WORDLIKE = re.compile(r"\w")


@dataclass(frozen=True)
class Term:
    text: str
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    text: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    excluded: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Term | Phrase | And | Or


def _lex(query: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        if m[1]:
            out.append(("(", "("))
        elif m[2]:
            out.append((")", ")"))
        elif m[3] is not None:
            if not m[4]:
                raise BadQuery(query, "a quote is not closed")
            out.append(("phrase", m[3]))
        elif m[5]:
            out.append(("-", "-"))
        elif m[6]:
            word = m[6]
            out.append((word, word) if word in ("AND", "OR", "NOT") else ("word", word))
    return out


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _lex(query)
        self.i = 0
        self.terms = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if not self.tokens:
            raise BadQuery(self.query, "it has no terms")
        node = self.or_expr()
        if self.peek() is not None:
            raise BadQuery(self.query, f"unexpected {self.tokens[self.i][1]!r}")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.peek() == "OR":
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items: list[Node] = []
        excluded: list[Node] = []
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.take()
                continue
            if self.peek() in ("NOT", "-"):
                self.take()
                excluded.append(self.atom())
                continue
            items.append(self.atom())
        if not items:
            raise BadQuery(self.query, "each part needs at least one term that is not negated")
        if len(items) == 1 and not excluded:
            return items[0]
        return And(tuple(items), tuple(excluded))

    def atom(self) -> Node:
        kind = self.peek()
        if kind is None:
            raise BadQuery(self.query, "it ends where a term was expected")
        kind, value = self.take()
        if kind == "(":
            node = self.or_expr()
            if self.peek() != ")":
                raise BadQuery(self.query, "a parenthesis is not closed")
            self.take()
            return node
        if kind in ("phrase", "word"):
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise BadQuery(self.query, f"it has more than {MAX_TERMS} terms")
            if kind == "phrase":
                if not _WORDLIKE.search(value):
                    raise BadQuery(self.query, f"the phrase {value!r} has no letters or digits")
                return Phrase(value)
            prefix = value.endswith("*")
            text = value.rstrip("*")
            if not _WORDLIKE.search(text):
                raise BadQuery(self.query, f"{value!r} has no letters or digits")
            return Term(text, prefix)
        raise BadQuery(self.query, f"unexpected {value!r}")


def parse(query: str) -> Node:
    """The query as a tree; BadQuery when it is empty, too long or malformed."""
    if len(query) > MAX_QUERY:
        raise BadQuery(query, f"it is longer than {MAX_QUERY} characters")
    return _Parser(query).parse()


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def to_fts5(node: Node) -> str:
    """FTS5 MATCH syntax: every term a quoted string, prefixes as `"tok"*`, NOT as FTS5's binary NOT."""
    match node:
        case Term(text, prefix):
            return _q(text) + ("*" if prefix else "")
        case Phrase(text):
            return _q(text)
        case Or(items):
            return "(" + " OR ".join(to_fts5(i) for i in items) + ")"
        case And(items, excluded):
            out = "(" + " AND ".join(to_fts5(i) for i in items) + ")"
            for e in excluded:
                out = f"({out} NOT {to_fts5(e)})"
            return out
    raise AssertionError(node)


def _sq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_simple_query_string(node: Node) -> str:
    """OpenSearch `simple_query_string` syntax (`+` and, `|` or, `-` not, `"…"` phrase, `tok*` prefix)."""
    match node:
        case Term(text, prefix):
            return re.sub(r'([+|\-"*()~\\])', r"\\\1", text) + ("*" if prefix else "")
        case Phrase(text):
            return _sq(text)
        case Or(items):
            return "(" + " | ".join(to_simple_query_string(i) for i in items) + ")"
        case And(items, excluded):
            parts = [to_simple_query_string(i) for i in items] + [
                "-" + to_simple_query_string(e) for e in excluded
            ]
            return "(" + " + ".join(parts) + ")"
    raise AssertionError(node)


def positive_terms(node: Node) -> list[str]:
    """The words and phrases that count towards a match (for a vector query in hybrid mode)."""
    match node:
        case Term(text, _) | Phrase(text):
            return [text]
        case Or(items) | And(items, _):
            return [t for i in items for t in positive_terms(i)]
    raise AssertionError(node)

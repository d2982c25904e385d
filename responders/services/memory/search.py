"""Relevance-ranked search over entities: tokenised, scored by where the tokens match.

Matching keeps the reference server's semantics for a one-word query (case-insensitive
substring of the name, the type, or any observation; so `[CORRECTION]` or `pan` still find
what they found there) and extends them to several words: an entity matches when every
whitespace-separated token occurs somewhere in it, in any order. Results are ranked:

    per token   in the name 4 (+4 more when it is a whole word of the name), in the type 2,
                in observations 1 per observation that contains it (at most 5)
    whole query equal to the name +20, a substring of the name +8 (several tokens only)

Ties keep graph order (creation order). An empty query matches everything, as there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Protocol, TypeVar

_WORD: Final = re.compile(r"[\w\[\]#@:./-]+")
_MAX_OBSERVATION_HITS: Final = 5


class Searchable(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def entityType(self) -> str: ...

    @property
    def observations(self) -> list[str]: ...


def tokens(query: str) -> list[str]:
    return [t for t in query.lower().split() if t]


def score(entity: Searchable, query_tokens: Sequence[str], phrase: str) -> int:
    """0 when the entity does not match (some token occurs nowhere), else its relevance."""
    name = entity.name.lower()
    etype = entity.entityType.lower()
    observations = [o.lower() for o in entity.observations]
    if not query_tokens:
        return 1
    total = 0
    name_words: set[str] | None = None
    for tok in query_tokens:
        hit = 0
        if tok in name:
            if name_words is None:
                name_words = set(_WORD.findall(name)) | set(name.split())
            hit += 8 if tok in name_words else 4
        if tok in etype:
            hit += 2
        obs_hits = sum(1 for o in observations if tok in o)
        hit += min(obs_hits, _MAX_OBSERVATION_HITS)
        if hit == 0:
            return 0
        total += hit
    if phrase == name:
        total += 20
    elif len(query_tokens) > 1 and phrase in name:
        total += 8
    return total


T = TypeVar("T", bound=Searchable)


def rank(entities: Sequence[T], query: str) -> list[T]:
    """The matching entities, best first; equal scores keep their order in `entities`."""
    toks = tokens(query)
    phrase = " ".join(toks)
    scored = [(s, i, e) for i, e in enumerate(entities) if (s := score(e, toks, phrase)) > 0]
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [e for _s, _i, e in scored]

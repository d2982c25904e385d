"""Typed payload filters: the JSON shape the tools accept, checked before Qdrant sees it.

    {"must":     [<condition>, ...],      every condition holds
     "should":   [<condition>, ...],      at least one holds
     "must_not": [<condition>, ...]}      none holds

    <condition> is one of
     {"key": "metadata.color", "match": "red"}                 equal to a string, integer or boolean
     {"key": "metadata.color", "match_any": ["red", "blue"]}   equal to one of (strings or integers)
     {"key": "metadata.color", "match_except": ["green"]}      equal to none of
     {"key": "metadata.year", "range": {"gte": 2020, "lt": 2024}}   numeric bounds (gt, gte, lt, lte)
     {"key": "metadata.tags", "is_empty": true}                missing, null or [] (false: has a value)
     {"must": [...], "should": [...], "must_not": [...]}       a nested group

Keys are payload paths (`store` puts its text under `document` and its metadata under
`metadata`, as mcp-server-qdrant does). At most 8 levels and 100 conditions per filter.
`to_qdrant` raises `InvalidFilter` naming the path of the bad condition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

from msgspec import Meta, Struct

from .errors import InvalidFilter

if TYPE_CHECKING:
    from qdrant_client.http import models

MAX_DEPTH: Final = 8
MAX_CONDITIONS: Final = 100
MAX_VALUES: Final = 1000

Key = Annotated[
    str, Meta(min_length=1, max_length=256, description="A payload path, e.g. metadata.color or tags[]")
]


class Range(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Numeric bounds; at least one."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


class Condition(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One condition: `key` with exactly one of match, match_any, match_except, range, is_empty;
    or, without `key`, a nested group of must / should / must_not."""

    key: Key | None = None
    match: str | int | bool | None = None
    match_any: list[str | int] | None = None
    match_except: list[str | int] | None = None
    range: Range | None = None
    is_empty: bool | None = None
    must: list[Condition] | None = None
    should: list[Condition] | None = None
    must_not: list[Condition] | None = None


class Filter(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A payload filter: every `must`, at least one `should`, no `must_not` condition holds."""

    must: list[Condition] | None = None
    should: list[Condition] | None = None
    must_not: list[Condition] | None = None


_FIELD_TESTS: Final = ("match", "match_any", "match_except", "range", "is_empty")


class _Builder:
    def __init__(self) -> None:
        from qdrant_client.http import models

        self.m = models
        self.count = 0

    def group(self, node: Filter | Condition, where: str, depth: int) -> models.Filter:
        if depth > MAX_DEPTH:
            raise InvalidFilter(where, f"groups are nested deeper than {MAX_DEPTH} levels")
        parts: dict[str, list[Any] | None] = {}
        for clause in ("must", "should", "must_not"):
            items: list[Condition] | None = getattr(node, clause)
            if items is None:
                parts[clause] = None
                continue
            if not items:
                raise InvalidFilter(f"{where}.{clause}", "is an empty list; leave it out instead")
            parts[clause] = [self.condition(c, f"{where}.{clause}[{i}]", depth) for i, c in enumerate(items)]
        if all(v is None for v in parts.values()):
            raise InvalidFilter(where, "has no must, should or must_not")
        return self.m.Filter(must=parts["must"], should=parts["should"], must_not=parts["must_not"])

    def condition(self, c: Condition, where: str, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_CONDITIONS:
            raise InvalidFilter(where, f"the filter has more than {MAX_CONDITIONS} conditions")
        tests = [name for name in _FIELD_TESTS if getattr(c, name) is not None]
        grouped = [name for name in ("must", "should", "must_not") if getattr(c, name) is not None]
        if c.key is None:
            if tests:
                raise InvalidFilter(where, f"'{tests[0]}' needs a 'key' (the payload path it tests)")
            return self.group(c, where, depth + 1)
        if grouped:
            raise InvalidFilter(
                where,
                f"a condition on a key cannot also hold '{grouped[0]}'; put the group in its own condition",
            )
        if len(tests) != 1:
            found = ", ".join(tests) or "none"
            raise InvalidFilter(
                where, f"needs exactly one of {', '.join(_FIELD_TESTS)} with 'key' (found: {found})"
            )
        m = self.m
        key = c.key
        if c.match is not None:
            return m.FieldCondition(key=key, match=m.MatchValue(value=c.match))
        if c.match_any is not None:
            return m.FieldCondition(
                key=key, match=m.MatchAny(any=self.values(c.match_any, f"{where}.match_any"))
            )
        if c.match_except is not None:
            return m.FieldCondition(
                key=key,
                match=m.MatchExcept(**{"except": self.values(c.match_except, f"{where}.match_except")}),
            )
        if c.range is not None:
            r = c.range
            if r.gt is None and r.gte is None and r.lt is None and r.lte is None:
                raise InvalidFilter(f"{where}.range", "needs at least one of gt, gte, lt, lte")
            return m.FieldCondition(key=key, range=m.Range(gt=r.gt, gte=r.gte, lt=r.lt, lte=r.lte))
        if c.is_empty:
            return m.IsEmptyCondition(is_empty=m.PayloadField(key=key))
        # is_empty: false — the key has a value: "not empty"
        return m.Filter(must_not=[m.IsEmptyCondition(is_empty=m.PayloadField(key=key))])

    @staticmethod
    def values(values: list[str | int], where: str) -> list[Any]:
        if not values:
            raise InvalidFilter(where, "is an empty list")
        if len({isinstance(v, str) for v in values}) > 1 or any(isinstance(v, bool) for v in values):
            raise InvalidFilter(where, "mixes types; give only strings or only integers")
        if len(values) > MAX_VALUES:
            raise InvalidFilter(where, f"has more than {MAX_VALUES} values")
        return list(values)


def to_qdrant(flt: Filter | None) -> models.Filter | None:
    """The Qdrant filter for `flt` (None for None). Raises InvalidFilter naming the bad part."""
    if flt is None:
        return None
    return _Builder().group(flt, "filter", 1)

"""Unit tests of bridge.catalog.Catalog: naming, order, and cursor pagination."""

from __future__ import annotations

import base64
import json
import re

import msgspec
import pytest

from bridge.catalog import Catalog, InvalidCursor, exposed_name
from schemas.mcp import Tool, ToolAnnotations

SCHEMA = msgspec.Raw(b'{"type":"object"}')
SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def tool(name: str, **kw: object) -> Tool:
    return Tool(name=name, inputSchema=SCHEMA, **kw)  # type: ignore[arg-type]


def tools(*names: str) -> list[Tool]:
    return [tool(n) for n in names]


def walk(catalog: Catalog, size: int) -> list[str]:
    """Every exposed name reached by following cursors from the first page (bounded)."""
    names: list[str] = []
    cursor: str | None = None
    for _ in range(len(catalog) + 2):
        entries, cursor = catalog.page(cursor, size)
        assert len(entries) <= size
        names.extend(e.exposed for e in entries)
        if cursor is None:
            return names
    raise AssertionError("pagination did not end")


def test_names_are_service_underscore_tool() -> None:
    """Each tool is exposed as <svc>_<tool>, and by_name finds its entry."""
    cat = Catalog({"fs": tools("read_text_file", "write_file"), "git": tools("status")})
    assert [e.exposed for e in cat.entries] == ["fs_read_text_file", "fs_write_file", "git_status"]
    entry = cat.by_name["git_status"]
    assert (entry.service, entry.tool.name) == ("git", "status")
    assert len(cat) == 3 and cat.services == frozenset({"fs", "git"})


def test_custom_separator() -> None:
    """A configured separator of underscores goes between service and tool."""
    cat = Catalog({"fs": tools("read")}, sep="__")
    assert [e.exposed for e in cat.entries] == ["fs__read"]


def test_definition_carries_the_exposed_name_and_keeps_the_rest() -> None:
    """An entry's JSON definition has the exposed name; the schema and annotations are untouched."""
    t = Tool(
        name="read",
        description="Read a file",
        inputSchema=msgspec.Raw(b'{"type":"object","properties":{"path":{"type":"string"}}}'),
        annotations=ToolAnnotations(readOnlyHint=True),
    )
    cat = Catalog({"fs": [t]})
    d = json.loads(cat.entries[0].definition)
    assert d["name"] == "fs_read"
    assert d["description"] == "Read a file"
    assert d["inputSchema"] == {"type": "object", "properties": {"path": {"type": "string"}}}
    assert d["annotations"] == {"readOnlyHint": True}
    assert cat.entries[0].tool.name == "read"  # the original tool keeps its bus name
    assert json.loads(cat.encode_tools(cat.entries)) == [d]


def test_order_is_deterministic() -> None:
    """Services are sorted by name, each service's tools keep their own order, whatever the dict order."""
    a = Catalog({"zeta": tools("b", "a"), "alpha": tools("y", "x"), "mid": tools("m")})
    b = Catalog({"mid": tools("m"), "alpha": tools("y", "x"), "zeta": tools("b", "a")})
    assert [e.exposed for e in a.entries] == ["alpha_y", "alpha_x", "mid_m", "zeta_b", "zeta_a"]
    assert [e.exposed for e in b.entries] == [e.exposed for e in a.entries]
    assert a.version == b.version


def test_long_name_is_shortened_with_a_digest_and_stays_unique() -> None:
    """Names over max_name are cut to max_name with a digest suffix, distinct for tools sharing a long prefix."""
    long1 = "x" * 80 + "_one"
    long2 = "x" * 80 + "_two"
    cat = Catalog({"fs": tools(long1, long2, "short")}, max_name=53)
    names = [e.exposed for e in cat.entries]
    assert all(len(n) <= 53 for n in names), names
    assert len(set(names)) == 3
    assert names[2] == "fs_short"
    for n in names[:2]:
        assert n.startswith("fs_xxx") and SAFE.match(n)
        assert re.search(r"-[0-9a-f]{8}$", n), n
    assert cat.by_name[names[0]].tool.name == long1
    assert cat.by_name[names[1]].tool.name == long2
    # the same input always gives the same shortened name
    again = Catalog({"fs": tools(long1, long2, "short")}, max_name=53)
    assert [e.exposed for e in again.entries] == names


@pytest.mark.parametrize("max_name", [16, 20, 53, 64, 128])
def test_every_name_fits_max_name(max_name: int) -> None:
    """Whatever the limit (16..128, the configurable range), every exposed name fits it and all are distinct."""
    names_in = [f"tool{i}" + "y" * i for i in range(0, 150, 7)]
    cat = Catalog({"svc": tools(*names_in), "other": tools(*names_in)}, max_name=max_name)
    names = [e.exposed for e in cat.entries]
    assert all(len(n) <= max_name for n in names), [n for n in names if len(n) > max_name]
    assert len(set(names)) == len(names) == 2 * len(names_in)
    assert all(SAFE.match(n) for n in names)


def test_unsafe_characters_are_replaced_and_the_name_stays_distinct() -> None:
    """A tool name with characters outside [A-Za-z0-9_-] is sanitised, with a digest so a.b and a-b stay distinct."""
    cat = Catalog({"fs": tools("a.b", "a-b", "a b")})
    names = [e.exposed for e in cat.entries]
    assert all(SAFE.match(n) for n in names), names
    assert len(set(names)) == 3
    assert "fs_a-b" in names  # the already-safe name is left alone
    assert exposed_name("fs", "a.b", "_", 53) != "fs_a-b"


@pytest.mark.parametrize(("count", "size"), [(0, 10), (1, 1), (7, 3), (10, 5), (250, 100), (5, 1000)])
def test_pagination_visits_every_entry_exactly_once(count: int, size: int) -> None:
    """Following nextCursor from the first page yields every entry once, in order, and then stops."""
    cat = Catalog(
        {
            "a": tools(*(f"t{i}" for i in range(count // 2))),
            "b": tools(*(f"t{i}" for i in range(count - count // 2))),
        }
    )
    assert walk(cat, size) == [e.exposed for e in cat.entries]


def test_last_page_has_no_cursor_and_empty_cursor_means_first_page() -> None:
    """A page that reaches the end has no next cursor; "" and None both mean the first page."""
    cat = Catalog({"fs": tools("a", "b", "c")})
    assert cat.page(None, 3) == (cat.entries, None)
    assert cat.page("", 2)[0] == cat.entries[:2]
    first, nxt = cat.page(None, 2)
    assert nxt is not None
    second, last = cat.page(nxt, 2)
    assert [e.exposed for e in second] == ["fs_c"] and last is None


def _valid_cursor(cat: Catalog) -> str:
    _, cursor = cat.page(None, 1)
    assert cursor is not None
    return cursor


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda c: "garbage!!", id="not base64"),
        pytest.param(lambda c: "é", id="non-ASCII"),
        pytest.param(lambda c: _b64("no colon here"), id="no offset"),
        pytest.param(lambda c: _b64(f"{c.version}:"), id="empty offset"),
        pytest.param(lambda c: _b64(f"{c.version}:one"), id="offset not a number"),
        pytest.param(lambda c: _b64(f"{c.version}:-1"), id="negative offset"),
        pytest.param(lambda c: _b64(f"{c.version}:99"), id="offset past the end"),
        pytest.param(lambda c: _b64(f"{'0' * 16}:1"), id="another version"),
        pytest.param(lambda c: base64.urlsafe_b64encode(b"\xff\xfe:1").decode(), id="not UTF-8"),
        pytest.param(lambda c: _valid_cursor(c)[::-1], id="reversed"),
        pytest.param(lambda c: _valid_cursor(c) + "AAAA", id="extended"),
    ],
)
def test_garbage_cursor_raises_invalid_cursor(make: object) -> None:
    """A cursor this catalog did not issue raises InvalidCursor, never another exception."""
    cat = Catalog({"fs": tools("a", "b", "c")})
    cursor = make(cat)  # type: ignore[operator]
    with pytest.raises(InvalidCursor):
        cat.page(cursor, 1)


def test_every_single_character_change_in_the_version_part_is_refused() -> None:
    """Changing any one character of the part of a cursor that encodes the catalog version makes it invalid."""
    cat = Catalog({"fs": tools("a", "b", "c")})
    cursor = _valid_cursor(cat)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(20):  # base64 characters 0..19 carry only the 16-character version
        for replacement in (
            alphabet[(alphabet.index(cursor[i]) + 1) % 64],
            alphabet[(alphabet.index(cursor[i]) + 33) % 64],
        ):
            tampered = cursor[:i] + replacement + cursor[i + 1 :]
            with pytest.raises(InvalidCursor):
                cat.page(tampered, 1)


def test_cursor_from_an_older_catalog_version_is_refused() -> None:
    """A cursor issued before the list changed raises InvalidCursor on the new catalog; an identical rebuild accepts it."""
    old = Catalog({"fs": tools("a", "b", "c")})
    cursor = _valid_cursor(old)
    changed = Catalog({"fs": tools("a", "b", "c", "d")})
    assert changed.version != old.version
    with pytest.raises(InvalidCursor, match="changed"):
        changed.page(cursor, 1)
    described = Catalog({"fs": [tool("a", description="now documented"), tool("b"), tool("c")]})
    assert described.version != old.version  # a definition change is a change too
    with pytest.raises(InvalidCursor):
        described.page(cursor, 1)
    same = Catalog({"fs": tools("a", "b", "c")})
    entries, _ = same.page(cursor, 1)
    assert [e.exposed for e in entries] == ["fs_b"]

"""The memory service against the reference server: a recorded session replayed call for call, the tool list, the resource, paging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from bus import Bus
from schemas import bus as h

from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio

TRANSCRIPT = json.loads(
    (Path(__file__).parent / "responders" / "services" / "memory" / "reference_transcript.json").read_text()
)


async def call(bus: Bus, tool: str, arguments: Any) -> dict[str, Any]:
    body = msgspec.json.encode({"name": tool, "arguments": arguments})
    reply = await bus.request(f"{bus.subjects.root}.memory.tools.call.{tool}", body, timeout=10)
    assert h.SERVICE_ERROR_CODE not in (reply.headers or {}), reply.data
    result: dict[str, Any] = msgspec.json.decode(reply.data)
    return result


async def test_a_recorded_reference_session_replays_identically(responders: Responders, bus: Bus) -> None:
    """Every call of a session recorded from the reference server (9 tools, errors included) gives the same text, structuredContent and isError, and the resource the same JSON."""
    responders.start("memory")
    await responders.wait_instances("memory", 1)
    with anyio.fail_after(60):
        for i, step in enumerate(TRANSCRIPT["calls"]):
            got = await call(bus, step["tool"], step["arguments"])
            where = f"call {i} ({step['tool']})"
            assert bool(got.get("isError")) == step["isError"], where
            assert got["content"][0]["text"] == step["text"], where
            if step["structuredContent"] is not None:
                assert got["structuredContent"] == step["structuredContent"], where
        reply = await bus.request(
            f"{bus.subjects.root}.memory.resources.read", b'{"uri":"memory://knowledge-graph"}', timeout=10
        )
    (contents,) = msgspec.json.decode(reply.data)["contents"]
    assert contents["mimeType"] == TRANSCRIPT["resource"]["mimeType"]
    assert contents["text"] == TRANSCRIPT["resource"]["text"]


async def test_tools_and_resource_are_listed_like_the_reference(responders: Responders, bus: Bus) -> None:
    """The nine tools have the reference's names, titles, descriptions, annotations and arguments; the graph resource is listed."""
    responders.start("memory")
    await responders.wait_instances("memory", 1)
    listed = msgspec.json.decode(
        (await bus.request(f"{bus.subjects.root}.memory.tools.list", b"{}", timeout=5)).data
    )["tools"]
    ours = {t["name"]: t for t in listed}
    for ref in TRANSCRIPT["tools"]:
        tool = ours[ref["name"]]
        assert (tool["title"], tool["description"], tool["annotations"]) == (
            ref["title"],
            ref["description"],
            {"title": ref["title"], **ref["annotations"]},
        ), ref["name"]
        assert set(ref["input"]) <= set(tool["inputSchema"]["properties"]), ref["name"]
        assert set(tool["inputSchema"].get("required", [])) == set(ref["input"]), ref["name"]
    assert len(ours) == len(TRANSCRIPT["tools"])
    resources = msgspec.json.decode(
        (await bus.request(f"{bus.subjects.root}.memory.resources.list", b"{}", timeout=5)).data
    )
    assert [(r["uri"], r["name"], r["title"], r["mimeType"]) for r in resources["resources"]] == [
        ("memory://knowledge-graph", "knowledge-graph", "Knowledge Graph", "application/json")
    ]


async def test_read_graph_pages_cover_the_graph_exactly_once(responders: Responders, bus: Bus) -> None:
    """read_graph with a limit returns pages whose entities and relations, joined, are exactly the whole graph."""
    responders.start("memory")
    await responders.wait_instances("memory", 1)
    names = [f"n{i:02d}" for i in range(25)]
    await call(
        bus,
        "create_entities",
        {"entities": [{"name": n, "entityType": "node", "observations": [n]} for n in names]},
    )
    rels = [{"from": names[i], "to": names[(i + 1) % 25], "relationType": "next"} for i in range(25)]
    rels.append(
        {"from": "ghost", "to": "n00", "relationType": "haunts"}
    )  # a dangling relation, allowed as in the reference
    await call(bus, "create_relations", {"relations": rels})
    whole = (await call(bus, "read_graph", {}))["structuredContent"]
    seen_entities: list[str] = []
    seen_relations: list[dict[str, str]] = []
    cursor = None
    with anyio.fail_after(30):
        for _ in range(10):
            args: dict[str, Any] = {"limit": 10} | ({"cursor": cursor} if cursor else {})
            page = (await call(bus, "read_graph", args))["structuredContent"]
            assert len(page["entities"]) <= 10
            seen_entities += [e["name"] for e in page["entities"]]
            seen_relations += page["relations"]
            cursor = page.get("nextCursor")
            if cursor is None:
                break
    assert seen_entities == [e["name"] for e in whole["entities"]] == names
    assert (
        sorted(map(str, seen_relations)) == sorted(map(str, whole["relations"])) and len(seen_relations) == 26
    )
    bad = await call(bus, "read_graph", {"limit": 5, "cursor": "not-a-cursor"})
    assert bad["isError"] is True and "invalid cursor" in bad["content"][0]["text"]


async def test_search_ranks_by_relevance_and_matches_words_in_any_order(
    responders: Responders, bus: Bus
) -> None:
    """A name match ranks above type and observation matches; several words match in any order, as tokens."""
    responders.start("memory")
    await responders.wait_instances("memory", 1)
    await call(
        bus,
        "create_entities",
        {
            "entities": [
                {"name": "Notes", "entityType": "document", "observations": ["mentions python once"]},
                {"name": "Python", "entityType": "language", "observations": ["created by Guido"]},
                {
                    "name": "Guido van Rossum",
                    "entityType": "person",
                    "observations": ["wrote Python", "python BDFL", "likes python"],
                },
                {"name": "Rust", "entityType": "language", "observations": []},
            ]
        },
    )
    found = (await call(bus, "search_nodes", {"query": "python"}))["structuredContent"]["entities"]
    assert [e["name"] for e in found] == ["Python", "Guido van Rossum", "Notes"]
    multi = (await call(bus, "search_nodes", {"query": "rossum GUIDO"}))["structuredContent"]["entities"]
    assert [e["name"] for e in multi] == [
        "Guido van Rossum"
    ]  # the reference needs the exact phrase and finds nothing
    assert (await call(bus, "search_nodes", {"query": "language"}))["structuredContent"]["entities"][0][
        "name"
    ] == "Python"


async def test_memory_tools_work_through_the_bridge(responders: Responders, bridge_argv: list[str]) -> None:
    """An MCP client sees memory_* tools and the knowledge-graph resource through the bridge, and they work."""
    responders.start("memory")
    await responders.wait_instances("memory", 1)
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"memory_create_entities", "memory_read_graph", "memory_search_nodes"} <= names
            made = await client.call_tool(
                "memory_create_entities",
                {"entities": [{"name": "Ada", "entityType": "person", "observations": ["first programmer"]}]},
            )
            assert made.structured_content == {
                "entities": [{"name": "Ada", "entityType": "person", "observations": ["first programmer"]}]
            }
            missing = await client.call_tool(
                "memory_add_observations", {"observations": [{"entityName": "Nobody", "contents": ["x"]}]}
            )
            assert missing.is_error and missing.content[0].text == "Entity with name Nobody not found"  # type: ignore[union-attr]
            graph = await client.read_resource("memory://knowledge-graph")
            assert json.loads(graph.contents[0].text)["entities"][0]["name"] == "Ada"  # type: ignore[union-attr]

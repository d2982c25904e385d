"""The neo4j service end to end against a real Neo4j server, when NEO4J_URL names one
(neo4j://user:password@host:7687; the tests create and delete nodes labelled McpNatsTest).
No Bolt server can run on the machines this suite was written on, so without NEO4J_URL every
test here is skipped with that reason; a mock would prove nothing about the driver or the server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import neo4j
import pytest
from mcp.types import CallToolResult, TextContent

from responders.services.neo4j import split_auth

from .conftest import Responders
from .e2e_helpers import bridge_client

URL = os.environ.get("NEO4J_URL", "")
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not URL, reason="no Neo4j server: set NEO4J_URL=neo4j://user:password@host:7687 to run these"
    ),
]


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture
async def graph() -> AsyncIterator[tuple[neo4j.AsyncDriver, str]]:
    uri, auth = split_auth(URL)
    driver = neo4j.AsyncGraphDatabase.driver(uri, auth=auth)
    tag = uuid.uuid4().hex[:8]
    await driver.execute_query(
        "UNWIND range(1, 30) AS i CREATE (:McpNatsTest {tag: $tag, i: i, vec: [x IN range(1, 200) | toFloat(x)]})",
        tag=tag,
    )
    await driver.execute_query(
        "MATCH (a:McpNatsTest {tag: $tag, i: 1}), (b:McpNatsTest {tag: $tag, i: 2}) CREATE (a)-[:KNOWS {since: 2020}]->(b)",
        tag=tag,
    )
    try:
        yield driver, tag
    finally:
        await driver.execute_query("MATCH (n:McpNatsTest {tag: $tag}) DETACH DELETE n", tag=tag)
        await driver.close()


async def count(driver: neo4j.AsyncDriver, tag: str) -> int:
    records, _, _ = await driver.execute_query(
        "MATCH (n:McpNatsTest {tag: $tag}) RETURN count(n) AS c", tag=tag
    )
    return int(records[0]["c"])


async def test_read_only_service(
    graph: tuple[neo4j.AsyncDriver, str], responders: Responders, bridge_argv: list[str]
) -> None:
    """Without --write: get_schema and read_cypher work, write_cypher is not listed, and writes through read_cypher are refused."""
    driver, tag = graph
    responders.start("neo4j", "--url", URL, env={"MCP_NATS_NEO4J_MAX_ROWS": "10"})
    await responders.wait_instances("neo4j", 1)
    password = (split_auth(URL)[1] or ("", ""))[1]
    with anyio.fail_after(90):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"neo4j_get_schema", "neo4j_read_cypher"}
            schema = await client.call_tool("neo4j_get_schema", {})
            assert not schema.is_error and "McpNatsTest" in (schema.structured_content or {})["labels"]
            rows = await client.call_tool(
                "neo4j_read_cypher",
                {
                    "query": "MATCH (n:McpNatsTest {tag: $tag}) RETURN n.i AS i, n.vec AS vec ORDER BY i",
                    "params": {"tag": tag},
                },
            )
            sc: dict[str, Any] = rows.structured_content or {}
            assert sc["columns"] == ["i", "vec"] and sc["rowCount"] == 10 and sc["truncated"] is True
            assert sc["rows"][0][0] == 1 and "left out" in sc["rows"][0][1]
            rel = await client.call_tool(
                "neo4j_read_cypher",
                {
                    "query": "MATCH (a:McpNatsTest {tag: $tag})-[r:KNOWS]->(b) RETURN a, r",
                    "params": {"tag": tag},
                },
            )
            node, edge = (rel.structured_content or {})["rows"][0]
            assert (
                node["labels"] == ["McpNatsTest"]
                and edge["type"] == "KNOWS"
                and edge["properties"] == {"since": 2020}
            )
            for query in (
                "CREATE (:McpNatsTest {tag: $tag})",
                "MATCH (n:McpNatsTest {tag: $tag}) SET n.x = 1",
                "MATCH (n:McpNatsTest {tag: $tag}) DETACH DELETE n",
                "MERGE (n:McpNatsTest {tag: $tag, i: 999})",
            ):
                r = await client.call_tool("neo4j_read_cypher", {"query": query, "params": {"tag": tag}})
                assert r.is_error and "refused" in text_of(r) and password not in text_of(r), text_of(r)
            bad = await client.call_tool("neo4j_read_cypher", {"query": "MATC (n) RETURN n"})
            assert bad.is_error and "syntax" in text_of(bad).lower()
    assert await count(driver, tag) == 30


async def test_write_service(
    graph: tuple[neo4j.AsyncDriver, str], responders: Responders, bridge_argv: list[str]
) -> None:
    """With --write, write_cypher is listed (destructive), writes, and reports the counters."""
    driver, tag = graph
    responders.start("neo4j", "--url", URL, "--write")
    await responders.wait_instances("neo4j", 1)
    with anyio.fail_after(90):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            ann = tools["neo4j_write_cypher"].annotations
            assert ann is not None and ann.destructive_hint is True
            r = await client.call_tool(
                "neo4j_write_cypher",
                {
                    "query": "CREATE (n:McpNatsTest {tag: $tag, i: 100}) RETURN n.i AS i",
                    "params": {"tag": tag},
                },
            )
            assert not r.is_error and (r.structured_content or {})["counters"]["nodes_created"] == 1
    assert await count(driver, tag) == 31

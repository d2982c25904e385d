"""The vector service end to end: the official MCP client drives `mcp-nats bridge`, which calls a
real `mcp-nats serve vector` responder (embedded Qdrant, the offline embedder) over NATS."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp.types import TextContent

from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio


async def test_store_and_find_through_the_bridge(
    tmp_path: Path, responders: Responders, bridge_argv: list[str]
) -> None:
    """vector_store then vector_find (default collection, a typed filter) answer through the bridge; a bad filter is an isError result naming its part."""
    responders.start("vector", "--path", str(tmp_path / "qdrant"), "--collection", "notes")
    await responders.wait_instances("vector", 1, timeout=60)
    with anyio.fail_after(90):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"vector_store", "vector_find", "vector_upsert_points", "vector_scroll"} <= names
            for text, kind in [
                ("The release is planned for the second week of March.", "plan"),
                ("Our cat Misu is afraid of the vacuum cleaner.", "pet"),
                ("Backups run every night at two in the morning.", "ops"),
            ]:
                stored = await client.call_tool(
                    "vector_store", {"information": text, "metadata": {"kind": kind}}
                )
                assert not stored.is_error, stored.content
            found = await client.call_tool(
                "vector_find", {"query": "when do we ship the new version", "limit": 1}
            )
            assert not found.is_error and isinstance(found.structured_content, dict)
            assert (
                found.structured_content["entries"][0]["document"]
                == "The release is planned for the second week of March."
            )
            block = found.content[0]
            assert isinstance(block, TextContent) and block.text.startswith(
                "Results for the query 'when do we ship the new version'\n<entry>"
            )
            only_ops = await client.call_tool(
                "vector_find",
                {"query": "pets at home", "filter": {"must": [{"key": "metadata.kind", "match": "ops"}]}},
            )
            assert [e["metadata"]["kind"] for e in only_ops.structured_content["entries"]] == ["ops"]
            bad = await client.call_tool(
                "vector_find", {"query": "x", "filter": {"must": [{"key": "a", "range": {}}]}}
            )
            assert bad.is_error and isinstance(bad.content[0], TextContent)
            assert "filter.must[0].range needs at least one of" in bad.content[0].text
            counted = await client.call_tool("vector_count", {})
            assert counted.structured_content == {"count": 3}

"""The search service end to end: three `mcp-nats serve search` processes share one index file while the
official MCP client, through the bridge, indexes and searches on all of them at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from bus import Bus

from .conftest import Responders
from .e2e_helpers import bridge_client
from .responders.services.search.corpus import CORPUS

pytestmark = pytest.mark.anyio
BATCH = 40


async def _requests(bus: Bus, root: str, tool: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in await bus.scatter(f"$SRV.STATS.{root}-search", idle=0.2, limit=2.0):
        stats = msgspec.json.decode(r.data)
        out[stats["id"]] = next(e["num_requests"] for e in stats["endpoints"] if e["name"] == tool)
    return out


@pytest.mark.slow
async def test_three_instances_index_and_search_one_index_at_once(
    responders: Responders, bridge_argv: list[str], tmp_path: Path, bus: Bus, root: str
) -> None:
    """Concurrent batches from 3 instances all land; every count seen meanwhile is a whole number of batches."""
    index_file = str(tmp_path / "state" / "search.db")
    for _ in range(3):
        responders.start("search", "--index-file", index_file, "--root", str(tmp_path))
    await responders.wait_instances("search", 3)
    counts: list[int] = []
    with anyio.fail_after(120):
        async with bridge_client(bridge_argv, mode="legacy") as client:

            async def call(tool: str, args: dict[str, Any]) -> dict[str, Any]:
                r = await client.call_tool(f"search_{tool}", args)
                assert not r.is_error, r.content
                assert isinstance(r.structured_content, dict)
                return dict(r.structured_content)

            await call("index_documents", {"index": "kb", "documents": CORPUS})
            await call(
                "index_documents", {"index": "live", "documents": [{"id": "seed", "text": "no marker here"}]}
            )

            async def writer(w: int) -> None:
                for b in range(4):
                    docs = [
                        {"id": f"w{w}-{b}-{i}", "text": f"batchmarker writer{w} number {i}"}
                        for i in range(BATCH)
                    ]
                    out = await call("index_documents", {"index": "live", "documents": docs})
                    assert out["indexed"] == BATCH

            async def reader() -> None:
                for _ in range(15):
                    found = await call("search", {"index": "kb", "query": "goroutines", "size": 3})
                    assert [h["id"] for h in found["hits"]] == ["golang"]
                    try:
                        counts.append(
                            (await call("count", {"index": "live", "query": "batchmarker"}))["count"]
                        )
                    except AssertionError:  # the index is created by the first batch
                        counts.append(0)

            async with anyio.create_task_group() as tg:
                for w in range(3):
                    tg.start_soon(writer, w)
                for _ in range(3):
                    tg.start_soon(reader)
            total = await call("count", {"index": "live"})
            assert total["count"] == 3 * 4 * BATCH + 1
            page = await call(
                "search", {"index": "live", "query": "writer2", "size": 100, "highlight": False}
            )
            assert page["total"] == 4 * BATCH and len(page["hits"]) == 100
    assert all(c % BATCH == 0 for c in counts), counts
    served = await _requests(bus, root, "search")
    assert len(served) == 3 and min(served.values()) > 0


async def test_index_paths_refuses_escapes_through_the_bridge(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """Through the bridge, index_paths refuses `..` and a symlink out of the root, and indexes nothing from outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("zebracorn\n")
    (root / "ok.txt").write_text("wombat\n")
    (root / "out").symlink_to(outside, target_is_directory=True)
    responders.start("search", "--index-file", str(tmp_path / "search.db"), "--root", str(root))
    await responders.wait_instances("search", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            for bad in ("../outside", str(outside / "secret.txt"), "out", "out/secret.txt"):
                r = await client.call_tool("search_index_paths", {"index": "f", "paths": [bad]})
                assert r.is_error, bad
            r = await client.call_tool("search_index_paths", {"index": "f", "paths": ["."]})
            assert not r.is_error and r.structured_content is not None
            assert r.structured_content["files_indexed"] == 1
            found = await client.call_tool("search_count", {"index": "f", "query": "zebracorn"})
            assert found.structured_content == {"index": "f", "count": 0}


async def test_hybrid_mode_through_the_bridge(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """`serve search --hybrid` embeds with the default embedder; a query sharing no word with its answer finds it."""
    responders.start(
        "search", "--index-file", str(tmp_path / "search.db"), "--root", str(tmp_path), "--hybrid"
    )
    await responders.wait_instances("search", 1, timeout=60)
    with anyio.fail_after(120):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            r = await client.call_tool("search_index_documents", {"index": "kb", "documents": CORPUS})
            assert not r.is_error and r.structured_content is not None and r.structured_content["embedded"]
            args = {"index": "kb", "query": "caffeinated drink", "size": 3}
            words = await client.call_tool("search_search", args)
            assert words.structured_content is not None and words.structured_content["hits"] == []
            meaning = await client.call_tool("search_search", {**args, "mode": "hybrid"})
            assert meaning.structured_content is not None
            assert meaning.structured_content["hits"][0]["id"] == "espresso"

"""`mcp-nats status` prints services, instances and per-tool counts read from $SRV.STATS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import pytest

from bus import Bus

from ..conftest import MCP_NATS, Responders, child_env

pytestmark = pytest.mark.anyio


async def test_status_table_counts_calls_per_tool(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """With two fs instances and three calls made, status shows the service with 2 instances and 3 calls of that tool."""
    responders.start("fs", "--root", str(tmp_path))
    responders.start("fs", "--root", str(tmp_path))
    await responders.wait_instances("fs", 2)
    for _ in range(3):
        await bus.request(
            f"{root}.fs.tools.call.list_allowed_directories",
            b'{"name":"list_allowed_directories"}',
            timeout=5,
        )
    out = subprocess.run(
        [MCP_NATS, "status", "--url", responders.url, "--subject-root", root],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
        check=True,
    ).stdout
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:3] == ["SERVICE", "INSTANCES", "ENDPOINT"]
    assert rows[1][:2] == ["fs", "2"]
    tool = next(r for r in rows if "list_allowed_directories" in r)
    assert tool[tool.index("list_allowed_directories") + 1] == "3"
    raw = subprocess.run(
        [MCP_NATS, "status", "--json", "--url", responders.url, "--subject-root", root],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
        check=True,
    ).stdout
    assert len([msgspec.json.decode(line) for line in raw.splitlines()]) == 2

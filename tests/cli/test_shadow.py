"""`mcp-nats rollout shadow`: through the real bridge, read-only calls are copied to the candidate and
compared (matches and mismatches with a diff in `rollout report`); other tools are never shadowed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from bus import Bus

from ..conftest import MCP_NATS, Responders, child_env
from ..e2e_helpers import bridge_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def rollout(url: str, root: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MCP_NATS, "rollout", *argv, "--nats-url", url, "--subject-root", root],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_shadow_compares_read_only_calls_and_never_copies_writes(
    responders: Responders, bridge_argv: list[str], bus: Bus, root: str, tmp_path: Path
) -> None:
    """3 identical reads match, 2 differing reads mismatch with a diff, 2 writes never reach the candidate."""
    stable, candidate = tmp_path / "stable", tmp_path / "candidate"
    for d, other in ((stable, "version A\n"), (candidate, "version B\n")):
        d.mkdir()
        (d / "same.txt").write_text("same on both\n")
        (d / "other.txt").write_text(other)
    responders.start("fs", "--root", str(stable))
    responders.start("fs", "--name", "fs-next", "--root", str(candidate))
    await responders.wait_instances("fs", 1)
    await responders.wait_instances("fs-next", 1)
    done = rollout(responders.url, root, "shadow", "fs", "--to", "fs-next")
    assert done.returncode == 0, done.stderr
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as c:
            for _ in range(3):
                r = await c.call_tool("fs_read_text_file", {"path": "same.txt"})
                assert r.content[0].text == "same on both\n"  # type: ignore[union-attr]
            for _ in range(2):
                r = await c.call_tool("fs_read_text_file", {"path": "other.txt"})
                # the client only ever sees the stable answer
                assert r.content[0].text == "version A\n"  # type: ignore[union-attr]
            for i in range(2):
                await c.call_tool("fs_write_file", {"path": f"new{i}.txt", "content": "x"})
        summary: dict[str, Any] = {}
        while summary.get("calls", 0) < 5:
            rep = rollout(responders.url, root, "report", "fs", "--json")
            assert rep.returncode == 0, rep.stderr
            summary = msgspec.json.decode(rep.stdout)
            await anyio.sleep(0.1)
    assert (summary["calls"], summary["matches"], summary["mismatches"], summary["errors"]) == (5, 3, 2, 0)
    assert summary["tools"] == ["read_text_file"]
    text = rollout(responders.url, root, "report", "fs")
    assert "2 mismatches" in text.stdout and "+++ candidate" in text.stdout
    lines = text.stdout.splitlines()
    assert any(ln.startswith("-") and "version A" in ln for ln in lines)  # the stable side of the diff
    assert any(ln.startswith("+") and "version B" in ln for ln in lines)  # the candidate's
    stats = await bus.scatter(f"$SRV.STATS.{root}-fs-next", idle=0.2, limit=2.0)
    endpoints = {e["name"]: e["num_requests"] for e in msgspec.json.decode(stats[0].data)["endpoints"]}
    assert endpoints["read_text_file"] == 5 and endpoints["write_file"] == 0
    assert not (candidate / "new0.txt").exists() and (stable / "new0.txt").exists()
    assert rollout(responders.url, root, "abort", "fs", "--state-dir", str(tmp_path / "s")).returncode == 0

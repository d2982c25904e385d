"""`mcp-nats up` serves its own /metrics beside its fs responder's, and both targets go when it stops."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from bus import EmbeddedServer

from ..cli.test_up import CLAUDE_LINE, Up
from ..conftest import child_env

pytestmark = pytest.mark.slow


def _targets(state: Path) -> dict[str, str]:
    """role -> address, from the file-SD targets under the state dir."""
    out: dict[str, str] = {}
    for path in (state / "prometheus").glob("*.json"):
        (group,) = json.loads(path.read_text())
        out[group["labels"]["role"]] = group["targets"][0]
    return out


def test_up_and_its_responder_are_discoverable_until_ctrl_c(
    nats_server: EmbeddedServer, root: str, tmp_path: Path
) -> None:
    """While up runs, the state dir names an `up` and a `responder` target whose /metrics answer; after Ctrl-C neither file is left."""
    state = tmp_path / "state"
    up = Up(tmp_path, state, child_env(MCP_NATS_NATS_URL=nats_server.url, MCP_NATS_NATS_ROOT=root))
    try:
        up.wait_line(CLAUDE_LINE)
        end = time.monotonic() + 15
        targets = _targets(state)
        while set(targets) != {"up", "responder"} and time.monotonic() < end:
            time.sleep(0.1)
            targets = _targets(state)
        assert set(targets) == {"up", "responder"}, up.output()
        bodies = {}
        for role, address in targets.items():
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
                bodies[role] = r.read().decode()
        assert "process_cpu_seconds_total" in bodies["up"]
        assert 'mcp_tool_calls_in_flight{service="fs"} 0.0' in bodies["responder"]
        assert up.interrupt() == 0
        assert list((state / "prometheus").glob("*.json")) == []
    finally:
        up.close()

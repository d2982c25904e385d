"""The per-service circuit breaker: repeated failures open it, calls then fail fast, a probe closes it."""

from __future__ import annotations

import subprocess

import anyio
import msgspec
import pytest
from mcp.shared.exceptions import MCPError

from ..conftest import MCP_NATS, Responders, child_env
from ..e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio
BREAKER = {
    "MCP_NATS_BRIDGE_BREAKER_THRESHOLD": "2",
    "MCP_NATS_BRIDGE_BREAKER_COOLDOWN": "1.0",
    "MCP_NATS_BRIDGE_CALL_TIMEOUT": "0.5",
}


def bridge_circuits(url: str, root: str) -> dict[str, str]:
    out = subprocess.run(
        [MCP_NATS, "status", "--json", "--url", url, "--subject-root", root],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
        check=True,
    ).stdout
    states: dict[str, str] = {}
    for line in out.splitlines():
        doc = msgspec.json.decode(line)
        for svc, c in (doc.get("circuits") or {}).items():
            states[svc] = c["state"]
    return states


async def test_breaker_opens_fails_fast_and_closes_after_a_probe(
    responders: Responders, bridge_argv: list[str], root: str
) -> None:
    """Two deadline failures open demo's circuit (visible in status); calls then fail fast with -31008; after the cooldown one probe closes it."""
    responders.start("demo")
    await responders.wait_instances("demo", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy", env=BREAKER) as c:
            for _ in range(2):
                with pytest.raises(MCPError) as err:
                    await c.call_tool("demo_sleep", {"seconds": 5})
                assert err.value.error.code == -31002
            with pytest.raises(MCPError) as err:
                await c.call_tool("demo_add", {"a": 1, "b": 1})
            assert err.value.error.code == -31008 and "circuit open" in err.value.error.message
            assert bridge_circuits(responders.url, root) == {"demo": "open"}
            with anyio.fail_after(10):
                while True:  # the cooldown is 1 s: poll until the probe is let through
                    try:
                        ok = await c.call_tool("demo_add", {"a": 1, "b": 1})
                        break
                    except MCPError as exc:
                        assert exc.error.code == -31008
                        await anyio.sleep(0.2)
            assert ok.structured_content == {"a": 1, "b": 1, "sum": 2}
            assert bridge_circuits(responders.url, root) == {"demo": "closed"}

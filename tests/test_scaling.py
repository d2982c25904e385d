"""Scaling and failover through the real bridge: load spreading, SIGKILL of an instance, SIGTERM drain."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from bus import Bus

from .conftest import Responders, child_env
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio

FAST_FAILOVER = {"MCP_NATS_BRIDGE_HEARTBEAT": "0.2", "MCP_NATS_BRIDGE_LIVENESS_WINDOW": "1.0"}


async def _tool_requests(bus: Bus, root: str, svc: str, tool: str) -> dict[str, int]:
    """Per-instance num_requests of one tool, from $SRV.STATS."""
    out: dict[str, int] = {}
    for r in await bus.scatter(f"$SRV.STATS.{root}-{svc}", idle=0.2, limit=2.0):
        stats = msgspec.json.decode(r.data)
        out[stats["id"]] = next(e["num_requests"] for e in stats["endpoints"] if e["name"] == tool)
    return out


async def test_calls_spread_over_two_responders(
    responders: Responders, bridge_argv: list[str], tmp_path: Path, bus: Bus, root: str
) -> None:
    """200 calls through the bridge with two fs processes in the queue group reach both of them."""
    (tmp_path / "f.txt").write_text("x" * 1024)
    responders.start("fs", "--fs-root", str(tmp_path))
    responders.start("fs", "--fs-root", str(tmp_path))
    await responders.wait_instances("fs", 2)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:

            async def worker(n: int) -> None:
                for _ in range(n):
                    r = await client.call_tool("fs_read_text_file", {"path": str(tmp_path / "f.txt")})
                    assert not r.is_error

            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(worker, 25)
    counts = await _tool_requests(bus, root, "fs", "read_text_file")
    assert len(counts) == 2 and sum(counts.values()) == 200
    assert min(counts.values()) > 0


async def test_serve_instances_starts_three_in_one_queue_group(
    responders: Responders, bridge_argv: list[str], tmp_path: Path, bus: Bus, root: str
) -> None:
    """`mcp-nats serve fs --instances 3` starts three responders and calls reach every one."""
    responders.start("fs", "--fs-root", str(tmp_path), "--instances", "3")
    ids = await responders.wait_instances("fs", 3)
    assert len(set(ids)) == 3
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:

            async def worker() -> None:
                for _ in range(40):
                    r = await client.call_tool("fs_list_allowed_directories", {})
                    assert not r.is_error

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(worker)
    counts = await _tool_requests(bus, root, "fs", "list_allowed_directories")
    assert sorted(counts) == sorted(ids) and sum(counts.values()) == 240
    assert all(c > 0 for c in counts.values())


async def test_sigkill_of_one_responder_loses_no_read_only_call(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """Killing one of two fs responders mid-run loses no read-only call: the bridge retries on the survivor."""
    for i in range(20):
        (tmp_path / f"{i}.txt").write_text(f"file {i}")
    victim = responders.start("fs", "--fs-root", str(tmp_path))
    responders.start("fs", "--fs-root", str(tmp_path))
    await responders.wait_instances("fs", 2)
    done = 0
    failures: list[str] = []
    with anyio.fail_after(90):
        async with bridge_client(bridge_argv, mode="legacy", env=FAST_FAILOVER) as client:

            async def worker(w: int) -> None:
                nonlocal done
                for k in range(50):
                    i = (w * 50 + k) % 20
                    r = await client.call_tool("fs_read_text_file", {"path": str(tmp_path / f"{i}.txt")})
                    if r.is_error or r.content[0].text != f"file {i}":  # type: ignore[union-attr]
                        failures.append(str(r.content))
                    done += 1
                    if done == 100:
                        victim.send_signal(signal.SIGKILL)

            async with anyio.create_task_group() as tg:
                for w in range(8):
                    tg.start_soon(worker, w)
    assert victim.wait(5) == -signal.SIGKILL
    assert done == 400 and failures == []


async def test_sigterm_drains_calls_in_flight(nats_server: object, root: str, bridge_argv: list[str]) -> None:
    """SIGTERM to a responder with calls in flight lets those calls finish and answer before it exits."""
    url = nats_server.url  # type: ignore[attr-defined]
    proc = subprocess.Popen([sys.executable, "-m", "tests.slow_service", url, root], env=child_env())
    try:
        responders = Responders(url, root)
        await responders.wait_instances("slow", 1)
        with anyio.fail_after(60):
            async with bridge_client(bridge_argv, mode="legacy") as client:
                await client.list_tools()
                results: list[str] = []
                started: set[int] = set()
                all_started = anyio.Event()

                async def one(n: int) -> None:
                    async def progress(progress: float, total: float | None, message: str | None) -> None:
                        started.add(n)  # the first progress frame proves the call is running on the responder
                        if len(started) == 5:
                            all_started.set()

                    r = await client.call_tool("slow_sleep", {"seconds": 2.0}, progress_callback=progress)
                    results.append(r.content[0].text)  # type: ignore[union-attr]

                async with anyio.create_task_group() as tg:
                    for n in range(5):
                        tg.start_soon(one, n)
                    await all_started.wait()
                    proc.send_signal(signal.SIGTERM)
                assert results == ["slept 2.0"] * 5
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

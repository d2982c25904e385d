"""A three-node NATS cluster on loopback: the bridge survives the loss of its node under load.

Three nats-server processes (JetStream on, routes between them on ports picked here), the
bridge given all three URLs, fs responders on the two nodes the bridge is not connected to.
Killing the bridge's node (SIGKILL) under load must move the bridge to a surviving node, and
read-only calls, including those in flight at the kill, must all succeed.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from mcp import types

from bus import EmbeddedServer

from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAST_FAILOVER = {"MCP_NATS_BRIDGE_HEARTBEAT": "0.2", "MCP_NATS_BRIDGE_LIVENESS_WINDOW": "1.0"}
BRIDGE_NAME = "mcp-nats bridge"


def free_port() -> int:
    """A loopback port nobody listens on right now (routes need known ports, so `-1` cannot be used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _monitor(server: EmbeddedServer, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}", timeout=2) as r:
        data: dict[str, object] = json.loads(r.read())
        return data


async def monitor(server: EmbeddedServer, path: str) -> dict[str, object]:
    """One JSON document from a node's monitoring port (blocking HTTP, so off the event loop)."""
    return await anyio.to_thread.run_sync(_monitor, server, path)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[EmbeddedServer]]:
    """Three clustered nodes with JetStream; every one of them is stopped after the test."""
    name = "c" + uuid.uuid4().hex[:10]  # a cluster name of our own: never join another test's routes
    route_ports = [free_port() for _ in range(3)]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
    nodes = [
        EmbeddedServer(
            tmp_path / f"n{i}",
            port=free_port(),
            http_port=-1,
            server_name=f"{name}-n{i}",
            extra_config=f"cluster {{\n  name: {name}\n  listen: 127.0.0.1:{route_ports[i]}\n  routes: [{routes}]\n}}",
        )
        for i in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def wait_routes(nodes: list[EmbeddedServer], timeout: float = 20.0) -> None:
    """Bounded wait until every node has routes to both others."""
    with anyio.fail_after(timeout):
        while True:
            names = []
            for n in nodes:
                routez = await monitor(n, "/routez")
                names.append({str(r.get("remote_name", r.get("remote_id"))) for r in routez.get("routes") or []})  # type: ignore[attr-defined]
            if all(len(s) >= 2 for s in names):
                return
            await anyio.sleep(0.1)


async def bridge_node(nodes: list[EmbeddedServer], timeout: float = 15.0) -> int:
    """Index of the (running) node the bridge is connected to, read from each node's /connz."""
    with anyio.fail_after(timeout):
        while True:
            for i, n in enumerate(nodes):
                if not n.running:
                    continue
                connz = await monitor(n, "/connz?limit=1024")
                if any(str(c.get("name", "")).startswith(BRIDGE_NAME) for c in connz.get("connections") or []):  # type: ignore[attr-defined]
                    return i
            await anyio.sleep(0.1)


async def test_bridge_moves_to_a_surviving_node_when_its_node_is_killed(cluster: list[EmbeddedServer], tmp_path: Path, root: str) -> None:
    """SIGKILL of the bridge's node under load: the bridge reconnects to another node and every read-only call succeeds."""
    await wait_routes(cluster)
    files = tmp_path / "files"
    files.mkdir()
    for i in range(20):
        (files / f"{i}.txt").write_text(f"file {i}")
    urls = ",".join(n.url for n in cluster)
    argv = ["bridge", "--url", urls, "--subject-root", root]
    responders: list[Responders] = []
    failures: list[str] = []
    done = 0
    after_kill = 0
    killed: int | None = None
    listed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            listed.set()

    try:
        with anyio.fail_after(120):
            async with bridge_client(argv, mode="legacy", env=FAST_FAILOVER, message_handler=on_message) as client:
                # nats-py shuffles the URL list, so the bridge may be on any node: that node is "A".
                a = await bridge_node(cluster)
                for i in range(3):
                    if i != a:
                        r = Responders(cluster[i].url, root)
                        r.start("fs", "--root", str(files))
                        responders.append(r)
                for r in responders:
                    await r.wait_instances("fs", 2)
                await listed.wait()  # discovery saw fs and told the client (notifications/tools/list_changed)
                assert "fs_read_text_file" in {t.name for t in (await client.list_tools()).tools}

                async def worker(w: int) -> None:
                    nonlocal done, after_kill, killed
                    for k in range(60):
                        i = (w * 60 + k) % 20
                        r = await client.call_tool("fs_read_text_file", {"path": str(files / f"{i}.txt")})
                        text = getattr(r.content[0], "text", None) if r.content else None
                        if r.is_error or text != f"file {i}":
                            failures.append(f"call {w}/{k}: {r.content}")
                        done += 1
                        if killed is not None:
                            after_kill += 1
                        if done == 120 and killed is None:
                            killed = a
                            cluster[a].kill()

                t_load = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for w in range(8):
                        tg.start_soon(worker, w)
                t_load = time.perf_counter() - t_load
                moved_to = await bridge_node(cluster)
                last = await client.call_tool("fs_read_text_file", {"path": str(files / "0.txt")})
    finally:
        for r in responders:
            r.stop_all()
    print(f"\ncluster: bridge on node {a}, SIGKILLed after 120 calls; moved to node {moved_to}; "  # noqa: T201 - the run's story, shown with -s
          f"{after_kill} calls completed after the kill, {len(failures)} failed; the 480 calls took {t_load:.1f} s")
    assert killed == a
    assert moved_to != a and cluster[moved_to].running
    assert done == 480 and after_kill >= 300
    assert failures == []
    assert not last.is_error

"""Faults on loopback: a NATS restart under load, and a rolling restart of every instance."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from bus import EmbeddedServer

from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio


async def test_nats_restart_bridge_and_responders_reconnect(tmp_path: Path, root: str) -> None:
    """With the server stopped and restarted on the same port mid-run, calls made during the outage still succeed and nothing hangs."""
    server = EmbeddedServer(tmp_path / "nats").start()
    (tmp_path / "f.txt").write_text("hello")
    responders = Responders(server.url, root)
    try:
        responders.start("fs", "--root", str(tmp_path))
        await responders.wait_instances("fs", 1)
        argv = ["bridge", "--url", server.url, "--subject-root", root]
        with anyio.fail_after(60):
            async with bridge_client(argv, mode="legacy") as c:
                ok = await c.call_tool("fs_read_text_file", {"path": str(tmp_path / "f.txt")})
                assert ok.content[0].text == "hello"  # type: ignore[union-attr]
                port = server.port
                server.stop()
                results: list[str] = []

                async def during_outage() -> None:
                    r = await c.call_tool("fs_read_text_file", {"path": str(tmp_path / "f.txt")})
                    results.append(r.content[0].text)  # type: ignore[union-attr]

                async with anyio.create_task_group() as tg:
                    for _ in range(5):
                        tg.start_soon(during_outage)
                    await anyio.sleep(1.0)  # an outage of about a second, on purpose
                    server = EmbeddedServer(tmp_path / "nats", port=port).start()
                assert results == ["hello"] * 5
                after = await c.call_tool("fs_read_text_file", {"path": str(tmp_path / "f.txt")})
                assert after.content[0].text == "hello"  # type: ignore[union-attr]
    finally:
        responders.stop_all()
        server.stop()


async def test_rolling_restart_under_load_fails_no_call(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """Replacing each of two instances in turn (start the new one, SIGTERM the old) while calls run fails none of them."""
    (tmp_path / "f.txt").write_text("x")
    old = [responders.start("fs", "--root", str(tmp_path)) for _ in range(2)]
    await responders.wait_instances("fs", 2)
    failures: list[str] = []
    done = 0
    stop = anyio.Event()
    with anyio.fail_after(90):
        async with bridge_client(bridge_argv, mode="legacy") as c:

            async def load() -> None:
                nonlocal done
                while not stop.is_set():
                    r = await c.call_tool("fs_get_file_info", {"path": str(tmp_path / "f.txt")})
                    if r.is_error:
                        failures.append(str(r.content))
                    done += 1

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(load)
                for proc in old:
                    responders.start("fs", "--root", str(tmp_path))
                    await responders.wait_instances("fs", 3)
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(20) == 0
                    await responders.wait_instances("fs", 2)
                stop.set()
    assert failures == [] and done > 50


async def test_a_connection_the_server_closes_for_good_is_replaced(
    nats_server: EmbeddedServer, tmp_path: Path, root: str
) -> None:
    """nats-py closes a connection for good (no reconnect) on most `-ERR` replies of the server,
    e.g. an account limit. The bridge then connects again and calls work; a responder stops with
    exit status 1 and says why, so whatever started it can start it again."""
    import asyncio
    import subprocess

    from mcp.shared.exceptions import MCPError

    from .conftest import MCP_NATS, child_env
    from .proxy import NatsProxy

    (tmp_path / "f.txt").write_text("hello")
    async with NatsProxy(nats_server.port) as bridge_side, NatsProxy(nats_server.port) as responder_side:
        responders = Responders(nats_server.url, root)
        try:
            responders.start("fs", "--root", str(tmp_path))
            await responders.wait_instances("fs", 1)
            argv = ["bridge", "--url", bridge_side.url, "--subject-root", root]
            with anyio.fail_after(60):
                async with bridge_client(argv, mode="legacy") as c:
                    ok = await c.call_tool("fs_read_text_file", {"path": str(tmp_path / "f.txt")})
                    assert ok.content[0].text == "hello"  # type: ignore[union-attr]
                    bridge_side.inject_err()
                    texts: list[str] = []
                    for _ in range(150):  # the bridge notices, connects again and rediscovers the service
                        try:
                            r = await c.call_tool("fs_read_text_file", {"path": str(tmp_path / "f.txt")})
                        except MCPError:  # "NATS is not reachable" while it connects again
                            r = None
                        if r is not None and not r.is_error and r.content[0].text == "hello":  # type: ignore[union-attr]
                            texts.append("hello")
                            break
                        await asyncio.sleep(0.1)
                    assert texts == ["hello"], "the bridge did not recover from a connection closed for good"
                    assert bridge_side.connections >= 2
            log = tmp_path / "responder.log"
            with log.open("wb") as err:
                proc = subprocess.Popen(
                    [
                        MCP_NATS,
                        "serve",
                        "fs",
                        "--root",
                        str(tmp_path),
                        "--url",
                        responder_side.url,
                        "--subject-root",
                        root,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    env=child_env(),
                )
            responders.procs.append(proc)
            await responders.wait_instances("fs", 2)
            responder_side.inject_err()
            assert await anyio.to_thread.run_sync(lambda: proc.wait(20)) == 1
            assert "closed for good" in log.read_text()
        finally:
            responders.stop_all()

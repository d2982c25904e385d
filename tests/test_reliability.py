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


async def test_rolling_restart_under_load_fails_no_call(responders: Responders, bridge_argv: list[str], tmp_path: Path) -> None:
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

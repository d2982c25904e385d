"""`mcp-nats rollout canary|promote|abort`: a weighted subject mapping applied to the running server by a
config reload splits a service's tool calls with its candidate; refused while no candidate runs."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import anyio
import msgspec
import pytest

from bus import Bus, EmbeddedServer, connect
from schemas import bus as h
from schemas.config import NatsSettings

from ..conftest import MCP_NATS, Responders, child_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
CALLS = 2000


def rollout(server: EmbeddedServer, root: str, state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            MCP_NATS,
            "rollout",
            *argv,
            "--nats-url",
            server.url,
            "--subject-root",
            root,
            "--state-dir",
            str(state),
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def shares(bus: Bus, root: str, calls: int) -> dict[str, int]:
    """Instance id -> calls it answered, for `calls` calls of demo.add (100 at a time)."""
    got: dict[str, int] = {}
    body = msgspec.json.encode({"name": "add", "arguments": {"a": 1, "b": 2}})

    async def one() -> None:
        reply = await bus.request(f"{root}.demo.tools.call.add", body, timeout=20)
        assert msgspec.json.decode(reply.data)["structuredContent"]["sum"] == 3
        who = (reply.headers or {}).get(h.INSTANCE, "?")
        got[who] = got.get(who, 0) + 1

    for _ in range(calls // 100):
        await asyncio.gather(*(one() for _ in range(100)))
    return got


async def test_canary_sends_its_weight_then_all_then_none(tmp_path: Path, root: str) -> None:
    """10 % canary: the candidate answers 10 +- 3 % of 2,000 calls; promote: all; abort: none; no restart between."""
    state = tmp_path / "state"
    server = EmbeddedServer(state / "server").start()
    r = Responders(server.url, root)
    try:
        r.start("demo")
        r.start("demo", "--name", "demo-next")
        (stable,) = await r.wait_instances("demo", 1)
        (candidate,) = await r.wait_instances("demo-next", 1)
        refused = rollout(server, root, state, "canary", "demo", "--to", "demo-nope", "--weight", "10")
        assert refused.returncode == 2 and "no instance of demo-nope" in refused.stderr
        done = rollout(server, root, state, "canary", "demo", "--to", "demo-next", "--weight", "10")
        assert done.returncode == 0, done.stderr
        pid = server.process.pid if server.process else 0
        with anyio.fail_after(120):
            async with connect(
                NatsSettings(url=server.url, root=root), name="t", ident="tr" + uuid.uuid4().hex[:6]
            ) as bus:
                got = await shares(bus, root, CALLS)
                assert set(got) == {stable, candidate}
                share = 100 * got[candidate] / CALLS
                assert abs(share - 10) <= 3, got
                assert rollout(server, root, state, "promote", "demo").returncode == 0
                assert await shares(bus, root, 200) == {candidate: 200}
                assert rollout(server, root, state, "abort", "demo").returncode == 0
                assert await shares(bus, root, 200) == {stable: 200}
        assert (
            server.process is not None and server.process.pid == pid and server.running
        )  # reloaded, never restarted
    finally:
        r.stop_all()
        server.stop()


async def test_canary_is_refused_when_the_server_runs_in_operator_mode(
    responders: Responders, nats_server: EmbeddedServer, root: str, tmp_path: Path
) -> None:
    """With auth on (operator mode) a server-level mapping would apply to no account: rollout refuses and says why."""
    sdir = tmp_path / "server"
    sdir.mkdir()
    (sdir / "nats-server.conf").write_text('operator: "eyJ0eXAi..."\ninclude "mappings.conf"\n')
    responders.start("demo", "--name", "demo-next")
    await responders.wait_instances("demo-next", 1)
    done = subprocess.run(
        [
            MCP_NATS,
            "rollout",
            "canary",
            "demo",
            "--to",
            "demo-next",
            "--nats-url",
            nats_server.url,
            "--subject-root",
            root,
            "--server-dir",
            str(sdir),
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "operator mode" in done.stderr
    assert not (sdir / "mappings.conf").exists()

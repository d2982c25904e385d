"""An operator-mode nats-server compiled from a policy, started and stopped by the test that uses it."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client

from bus import EmbeddedServer, JetStream, audit_stream, connect, stream_name
from bus.authstore import AuthDir, Compiled
from bus.subjects import Subjects
from cli.catalog import catalog
from schemas.config import AuditSettings, NatsSettings, Settings

from .conftest import MCP_NATS, child_env

POLICY = """
[roles.reader]
allow = ["fs.read_*", "fs.list_*", "fs.get_file_info", "fs.search_files", "memory.read_graph", "memory.search_nodes", "memory.open_nodes"]
[roles.writer]
allow = ["fs.*", "memory.*"]
deny  = ["fs.delete_file"]
[identities.alice]
roles = ["writer"]
[identities.ci]
roles = ["reader"]
rate = "20/s"
"""


@dataclass
class Secured:
    """The auth directory, the server and the subject root of one test."""

    adir: AuthDir
    server: EmbeddedServer
    root: str
    base: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def settings(self, creds: Path | str = "") -> NatsSettings:
        return NatsSettings(
            url=self.url,
            root=self.root,
            connect_timeout=2.0,
            credentials=str(creds),
            max_reconnect_attempts=0,
        )

    def compile(self, policy: str) -> Compiled:
        from cli.auth import compile_policy

        return compile_policy(_settings(self.root), self.adir, policy, "the test policy")

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """`mcp-nats <argv>` against this server with `base` as the state dir (its auth dir found there)."""
        return subprocess.run(
            [MCP_NATS, *argv, "--nats-url", self.url, "--subject-root", self.root],
            env=child_env(MCP_NATS_STATE_DIR=str(self.base)), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def serve(self, service: str, *args: str) -> subprocess.Popen[bytes]:
        argv = [
            MCP_NATS, "serve", service, "--nats-url", self.url, "--subject-root", self.root, "--log-level", "warning",
            "--credentials", str(self.adir.service_creds(service)), *args,
        ]  # fmt: skip
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, env=child_env(MCP_NATS_STATE_DIR=str(self.base / "state"))
        )
        self.procs.append(proc)
        return proc

    async def wait_instances(self, service: str, count: int = 1, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        async with connect(
            self.settings(self.adir.admin_creds), name="test", ident="t" + uuid.uuid4().hex[:8]
        ) as bus:
            while time.monotonic() < end:
                replies = await bus.scatter(f"$SRV.PING.{self.root}-{service}", idle=0.1, limit=1.0)
                if len(replies) >= count:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(f"{service} did not come up within {timeout} s")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.server.stop()


def _settings(root: str) -> Settings:
    return Settings(nats=NatsSettings(root=root))


def start_secured(tmp_path: Path) -> Iterator[Secured]:
    """The body of a `secured` fixture: compile POLICY, start the server, stop everything after."""
    root = "t" + uuid.uuid4().hex[:12]
    adir = AuthDir(tmp_path / "auth")
    from cli.auth import compile_policy

    compile_policy(_settings(root), adir, POLICY, "the test policy")
    server = EmbeddedServer(tmp_path / "server", extra_config=adir.server_config()).start()
    sec = Secured(adir, server, root, tmp_path)
    try:
        asyncio.run(_streams(sec))
        yield sec
    finally:
        sec.stop()


async def _streams(sec: Secured) -> None:
    async with connect(sec.settings(sec.adir.admin_creds), name="test", ident="setup") as bus:
        await JetStream(bus).ensure_stream(audit_stream(sec.root, AuditSettings()))


def audit_name(root: str) -> str:
    return stream_name("audit", root)


class RawClient:
    """A plain nats-py client (what a modified bridge could do) that collects the server's async errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.closed = asyncio.Event()
        self.nc: Client | None = None

    async def connect(self, url: str, creds: Path | str, inbox: str = "") -> Client:
        async def error_cb(exc: Exception) -> None:
            self.errors.append(str(exc))

        async def closed_cb() -> None:
            self.closed.set()

        kw: dict[str, object] = {"inbox_prefix": inbox} if inbox else {}
        self.nc = await nats.connect(
            url,
            user_credentials=str(creds),
            error_cb=error_cb,
            closed_cb=closed_cb,
            allow_reconnect=False,
            **kw,
        )
        return self.nc

    async def wait_error(self, needle: str, timeout: float = 5.0) -> str:
        """The first async error containing `needle` (lower case), bounded."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.errors:
                if needle in e.lower():
                    return e
            await asyncio.sleep(0.02)
        raise AssertionError(f"no server error with {needle!r} within {timeout} s; errors: {self.errors}")

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()


def subjects(root: str) -> Subjects:
    return Subjects(root)


def catalog_of(root: str) -> dict[str, list[str]]:
    return catalog(_settings(root))

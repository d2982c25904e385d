"""`mcp-nats up` with mTLS (issue #11): it runs the auth callout under its supervisor, so a client with only its
certificate is admitted as the identity the policy maps it to, and Ctrl-C stops the callout with the rest."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from bus import connect
from schemas.config import DEFAULT_URL, NatsSettings

from ..conftest import MCP_NATS, child_env
from .test_up import CLAUDE_LINE, Up, assert_gone, default_server_refused, parent_of

POLICY = '[roles.reader]\nallow = ["fs.read_*", "fs.list_*"]\n[identities.alice]\nroles = ["reader"]\ncertificate = "CN=alice"\n'


async def tools_list_as(url: str, tls: Path, who: str) -> tuple[str, bytes]:
    settings = NatsSettings(
        url=url, connect_timeout=5.0, max_reconnect_attempts=0,
        tls_ca=str(tls / "ca.pem"), tls_cert=str(tls / "clients" / f"{who}.pem"), tls_key=str(tls / "clients" / f"{who}.key"),
    )  # fmt: skip
    async with connect(settings, name="test", ident="cert") as bus:
        reply = await bus.request(bus.subjects.tools_list("fs"), b"{}", timeout=10.0)
        return bus.user, reply.data


def test_up_with_mtls_admits_a_certificate_alone_and_stops_the_callout(tmp_path: Path) -> None:
    """After `auth init --mtls`, `up` starts the callout as its child; alice's certificate alone lists fs's tools; SIGINT stops the callout."""
    if default_server_refused() is None:
        pytest.skip(
            f"a suitable NATS server answers at {DEFAULT_URL}; up would reuse it instead of starting one"
        )
    state = tmp_path / "state"
    (tmp_path / "policy.toml").write_text(POLICY)
    init = [MCP_NATS, "auth", "init", "--policy", "policy.toml", "--mtls", "--state-dir", str(state)]
    done = subprocess.run(init, cwd=tmp_path, capture_output=True, timeout=120, check=False, env=child_env())
    assert done.returncode == 0, done.stderr.decode()
    up = Up(tmp_path, state, child_env())
    try:
        assert "TLS is on with client certificates (mTLS)" in up.wait_line("TLS is on", timeout=60)
        up.wait_line(CLAUDE_LINE, timeout=60)
        url = (state / "nats.url").read_text().strip()
        user, data = asyncio.run(tools_list_as(url, state / "auth" / "tls", "alice"))
        assert user == "alice" and b"read_text_file" in data
        m = re.search(r"started auth callout \(pid (\d+)\)", up.stderr_path.read_text())
        assert m is not None, up.output()
        callout = int(m[1])
        up.pids.append(callout)
        assert parent_of(callout) == up.proc.pid, "the callout is up's own child"
        assert up.interrupt() == 0, up.output()
        assert_gone(callout, "the auth callout")
    finally:
        up.close()

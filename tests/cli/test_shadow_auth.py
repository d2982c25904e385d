"""`mcp-nats rollout shadow` with auth on, against a real operator-mode server: a bridge with an identity's
credentials reads the shadow setting through the exported direct-get API, copies read-only calls to the candidate
and its comparisons reach the rollout stream in the services account; writes are never copied."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from cli.auth import push

from ..conftest import MCP_NATS, child_env
from ..e2e_helpers import bridge_client
from ..security_helpers import POLICY, RawClient, Secured, start_secured

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SHADOW_POLICY = (
    POLICY
    + """
[roles.both]
allow = ["fs.*", "fs-next.*"]
[identities.shadowed]
roles = ["both"]
[services.fs-next]
like = "fs"
"""
)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    yield from start_secured(tmp_path)


async def test_a_bridge_with_credentials_shadows_read_only_calls(secured: Secured, tmp_path: Path) -> None:
    """As identity `shadowed`: 2 identical reads match, 1 differing read mismatches, a write is never copied; the
    identity may not read any other stream through the direct-get API."""
    (secured.base / "nats.url").write_text(secured.url + "\n")
    await push(secured.adir, secured.compile(SHADOW_POLICY), secured.url)
    stable, candidate = tmp_path / "stable", tmp_path / "candidate"
    for d, other in ((stable, "version A\n"), (candidate, "version B\n")):
        d.mkdir()
        (d / "same.txt").write_text("same on both\n")
        (d / "other.txt").write_text(other)
    for argv in (["fs", "--root", str(stable)], ["fs", "--name", "fs-next", "--root", str(candidate)]):
        proc = subprocess.Popen(
            [MCP_NATS, "serve", *argv, "--nats-url", secured.url, "--subject-root", secured.root, "--log-level", "warning"],
            stdin=subprocess.DEVNULL, env=child_env(MCP_NATS_STATE_DIR=str(secured.base)),
        )  # fmt: skip
        secured.procs.append(proc)
    await secured.wait_instances("fs")
    await secured.wait_instances("fs-next")
    done = secured.cli("rollout", "shadow", "fs", "--to", "fs-next")
    assert done.returncode == 0, done.stderr
    creds = str(secured.adir.user_creds("shadowed"))
    argv = ["bridge", "--url", secured.url, "--subject-root", secured.root, "--credentials", creds]
    with anyio.fail_after(60):
        async with bridge_client(argv, mode="legacy") as c:
            for path in ("same.txt", "same.txt", "other.txt"):
                r = await c.call_tool("fs_read_text_file", {"path": path})
                assert "version B" not in r.content[0].text  # type: ignore[union-attr]
            await c.call_tool("fs_write_file", {"path": "new.txt", "content": "x"})
        summary: dict[str, Any] = {}
        while summary.get("calls", 0) < 3:
            rep = secured.cli("rollout", "report", "fs", "--json")
            assert rep.returncode == 0, rep.stderr
            summary = msgspec.json.decode(rep.stdout)
            await anyio.sleep(0.1)
    assert (summary["calls"], summary["matches"], summary["mismatches"], summary["errors"]) == (3, 2, 1, 0)
    assert not (candidate / "new.txt").exists() and (stable / "new.txt").exists()
    raw = RawClient()
    await raw.connect(secured.url, creds, inbox="_INBOX_shadowed.t")
    try:
        assert raw.nc is not None
        await raw.nc.publish(f"$JS.API.DIRECT.GET.MCP_AUDIT_{secured.root}", b"{}")
        await raw.wait_error("permissions violation")
    finally:
        await raw.close()

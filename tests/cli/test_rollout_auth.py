"""`mcp-nats rollout canary|promote|abort` with auth on: the weighted mapping goes into the clients account JWT,
pushed live through the system account, against a real operator-mode server (the server checks a caller's publish
permission on the mapped subject, so the candidate's tools must be granted too)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from bus import connect
from bus.jwt import decode
from cli.auth import push

from ..conftest import MCP_NATS, child_env
from ..security_helpers import POLICY, Secured, start_secured
from .test_rollout import CALLS, shares

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CANARY_POLICY = (
    POLICY
    + """
[roles.demo]
allow = ["demo.*", "demo-next.*"]
[identities.caller]
roles = ["demo"]
[services.demo-next]
like = "demo"
"""
)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    yield from start_secured(tmp_path)


def _serve(secured: Secured, *argv: str) -> None:
    proc = subprocess.Popen(
        [MCP_NATS, "serve", *argv, "--nats-url", secured.url, "--subject-root", secured.root, "--log-level", "warning"],
        stdin=subprocess.DEVNULL, env=child_env(MCP_NATS_STATE_DIR=str(secured.base)),
    )  # fmt: skip
    secured.procs.append(proc)


def _clients_mappings(secured: Secured) -> dict[str, object]:
    for token in secured.adir.resolver()["accounts"].values():
        claims = decode(token)
        if claims["name"] == "CLIENTS":
            return dict(claims["nats"].get("mappings") or {})
    raise AssertionError("no CLIENTS account")


async def test_canary_with_auth_on_splits_by_weight_then_promotes_and_aborts(secured: Secured) -> None:
    """Refused while the caller may not call the candidate; then 10 % in the clients account: the candidate answers
    10 +- 3 % of 2,000 calls; promote: all 200; abort: none; the server process is the same throughout."""
    (secured.base / "nats.url").write_text(secured.url + "\n")  # the state directory `up` would leave
    await push(secured.adir, secured.compile(CANARY_POLICY), secured.url)
    _serve(secured, "demo")
    _serve(secured, "demo", "--name", "demo-next")
    await secured.wait_instances("demo")
    await secured.wait_instances("demo-next")
    pid = secured.server.process.pid if secured.server.process else 0
    # the server checks the publish permission after mapping: a caller without the candidate's tools is refused
    await push(secured.adir, secured.compile(CANARY_POLICY.replace(', "demo-next.*"', "")), secured.url)
    refused = secured.cli("rollout", "canary", "demo", "--to", "demo-next", "--weight", "10")
    assert refused.returncode == 2 and "caller" in refused.stderr, refused.stderr
    assert _clients_mappings(secured) == {}
    await push(secured.adir, secured.compile(CANARY_POLICY), secured.url)
    done = secured.cli("rollout", "canary", "demo", "--to", "demo-next", "--weight", "10")
    assert done.returncode == 0, done.stderr
    assert list(_clients_mappings(secured)) == [f"{secured.root}.demo.tools.call.*"]
    with anyio.fail_after(180):
        async with connect(
            secured.settings(secured.adir.user_creds("caller")), name="t", ident="c" + uuid.uuid4().hex[:6]
        ) as bus:
            got = await shares(bus, secured.root, CALLS)
            assert len(got) == 2, got
            candidate = min(got, key=lambda k: got[k])
            assert abs(100 * got[candidate] / CALLS - 10) <= 3, got
            assert secured.cli("rollout", "promote", "demo").returncode == 0
            assert await shares(bus, secured.root, 200) == {candidate: 200}
            aborted = secured.cli("rollout", "abort", "demo")
            assert aborted.returncode == 0, aborted.stderr
            after = await shares(bus, secured.root, 200)
            assert len(after) == 1 and candidate not in after, after
    assert _clients_mappings(secured) == {}
    assert secured.server.process is not None and secured.server.process.pid == pid and secured.server.running

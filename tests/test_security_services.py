"""Credentials for service names no plugin has (issue #14 under auth): `mcp-nats auth service NAME` against a
real operator-mode server; `serve --name NAME` and `attach NAME` find them with no flag; policies grant NAME's tools."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from bus import PermissionDenied, connect
from cli.auth import push
from schemas import errors as codes

from .conftest import MCP_NATS, child_env
from .security_helpers import POLICY, Secured, start_secured

pytestmark = pytest.mark.anyio

CANDIDATE_POLICY = (
    POLICY
    + """
[roles.next-reader]
allow = ["fs-next.read_*", "tool1.*"]
[identities.tester]
roles = ["next-reader"]
[services.fs-next]
like = "fs"
[services.tool1]
"""
)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    yield from start_secured(tmp_path)


def _state(secured: Secured) -> Path:
    """A state directory whose auth/ is the test's and whose recorded server is the test's (as `up` leaves them)."""
    assert secured.adir.path == secured.base / "auth"
    (secured.base / "nats.url").write_text(secured.url + "\n")
    return secured.base


def _start(secured: Secured, argv: list[str]) -> subprocess.Popen[bytes]:
    common = ["--subject-root", secured.root, "--log-level", "warning"]
    proc = subprocess.Popen(
        [MCP_NATS, *argv[:2], *common, *argv[2:]],
        stdin=subprocess.DEVNULL,
        env=child_env(MCP_NATS_STATE_DIR=str(_state(secured))),
    )
    secured.procs.append(proc)
    return proc


def _call(tool: str, args: dict[str, object]) -> bytes:
    return msgspec.json.encode({"name": tool, "arguments": args})


async def test_auth_service_gives_a_candidate_and_an_attached_server_credentials_found_without_a_flag(
    secured: Secured, tmp_path: Path
) -> None:
    """`auth service` writes services/NAME.creds and pushes the exports live; `serve fs --name fs-next` and
    `attach tool1` connect with them unflagged; a policy granting `fs-next.read_*` lets its identity read, not write."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello\n")
    state = _state(secured)
    for argv in (["fs-next", "--like", "fs"], ["tool1"]):
        done = subprocess.run(
            [MCP_NATS, "auth", "service", *argv, "--nats-url", secured.url, "--subject-root", secured.root],
            env=child_env(MCP_NATS_STATE_DIR=str(state)), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Pushed" in done.stdout
    assert secured.adir.service_creds("fs-next").is_file() and secured.adir.service_creds("tool1").is_file()
    assert '[services."fs-next"]' in secured.adir.policy_file.read_text()
    again = subprocess.run(
        [MCP_NATS, "auth", "service", "tool1", "--nats-url", secured.url, "--subject-root", secured.root],
        env=child_env(MCP_NATS_STATE_DIR=str(state)), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    _start(secured, ["serve", "fs", "--name", "fs-next", "--root", str(files)])
    _start(secured, ["attach", "tool1", "--", sys.executable, "-m", "tests.stdio_child"])
    await secured.wait_instances("fs-next")
    await secured.wait_instances("tool1")
    compiled = secured.compile(CANDIDATE_POLICY)
    assert await push(secured.adir, compiled, secured.url) == ["jwt updated", "jwt updated"]
    with anyio.fail_after(60):
        async with connect(
            secured.settings(secured.adir.user_creds("tester")), name="t", ident="tester1"
        ) as bus:
            hello = str(files / "hello.txt")
            reply = await bus.request(
                bus.subjects.tool_call("fs-next", "read_text_file"),
                _call("read_text_file", {"path": hello}),
                timeout=10.0,
            )
            assert b"hello" in reply.data
            reply = await bus.request(bus.subjects.tool_call("tool1", "pid"), _call("pid", {}), timeout=20.0)
            assert not msgspec.json.decode(reply.data).get("isError") and b"content" in reply.data
            with pytest.raises(PermissionDenied) as denied:
                await bus.request(
                    bus.subjects.tool_call("fs-next", "write_file"),
                    _call("write_file", {"path": str(files / "x.txt"), "content": "x"}),
                    timeout=600.0,
                )
            assert denied.value.code == codes.PERMISSION
            with pytest.raises(PermissionDenied):  # the stable fs is not granted to this identity at all
                await bus.request(
                    bus.subjects.tool_call("fs", "read_text_file"),
                    _call("read_text_file", {"path": hello}),
                    timeout=600.0,
                )
    assert not (files / "x.txt").exists()


def test_a_service_name_without_credentials_is_told_how_to_make_them(secured: Secured) -> None:
    """With auth on, `serve demo --name nocreds` exits 2 naming the missing file and the `auth service` command."""
    done = subprocess.run(
        [MCP_NATS, "serve", "demo", "--name", "nocreds", "--subject-root", secured.root],
        env=child_env(MCP_NATS_STATE_DIR=str(_state(secured))), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        "services/nocreds.creds" in done.stderr and "mcp-nats auth service nocreds --like demo" in done.stderr
    )

"""The bridge's stdin is hostile input: every bad line gets the JSON-RPC answer the specification
asks for (or none, for notifications), and the session keeps working right after it.

The real `mcp-nats bridge` runs as a subprocess; every read of its stdout is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from ..conftest import MCP_NATS, Responders, child_env

pytestmark = pytest.mark.anyio

READ_TIMEOUT = 5.0
TEN_MIB = 10 * 1024 * 1024
_NO_REPLY = object()


class BridgeProcess:
    """One bridge subprocess: write lines to its stdin, read JSON-RPC lines from its stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.raw_lines: list[bytes] = []  # every stdout line read so far, as received

    async def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        await self.proc.stdin.drain()

    async def send_json(self, msg: dict[str, Any]) -> None:
        await self.send(json.dumps(msg).encode())

    async def recv_raw(self, timeout: float = READ_TIMEOUT) -> bytes:
        """The next complete stdout line (with its newline); fails after `timeout` seconds."""
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no line on the bridge's stdout within {timeout} s; stderr:\n{self.log()}"
            ) from None
        assert line, f"the bridge closed its stdout; stderr:\n{self.log()}"
        assert line.endswith(b"\n"), f"a partial line on stdout: {line[:200]!r}"
        self.raw_lines.append(line)
        return line

    async def recv(self, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        """The next stdout line, which must be one JSON-RPC 2.0 object; fails after `timeout` seconds."""
        line = await self.recv_raw(timeout)
        msg = json.loads(line)
        assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0", (
            f"not a JSON-RPC 2.0 object: {line[:200]!r}"
        )
        return msg

    async def ping(self, id: int) -> None:
        """Send a ping and require the very next stdout line to be its empty result."""
        await self.send_json({"jsonrpc": "2.0", "id": id, "method": "ping"})
        reply = await self.recv()
        assert reply == {"jsonrpc": "2.0", "id": id, "result": {}}

    async def initialize(self) -> None:
        await self.send_json(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "test-stdin", "version": "0"},
                },
            }
        )
        reply = await self.recv()
        assert reply["id"] == 0 and reply["result"]["protocolVersion"] == "2025-11-25", reply
        await self.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def log(self) -> str:
        try:
            return self.stderr.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no stderr)"


@contextlib.asynccontextmanager
async def bridge_process(argv: list[str], tmp_path: Path, **env: str) -> AsyncIterator[BridgeProcess]:
    """Start `mcp-nats bridge`; on exit close its stdin and make sure it is gone (bounded)."""
    stderr_path = tmp_path / "bridge.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            MCP_NATS,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=child_env(**env),
            cwd=str(tmp_path),
        )
    try:
        yield BridgeProcess(proc, stderr_path)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        if not proc.stdin.is_closing():
            proc.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.wait_closed()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(proc.stdout.read(), 5)  # drain to EOF so the pipe transport closes


@dataclass(frozen=True)
class Case:
    name: str
    line: bytes
    expect: Any  # ("error", code, id) | ("result", id) | _NO_REPLY


CASES = [
    Case("invalid JSON", b'{"jsonrpc":"2.0","id":1,"method":"ping"', ("error", -32700, None)),
    Case("wrong jsonrpc version", b'{"jsonrpc":"1.0","id":2,"method":"ping"}', ("error", -32600, 2)),
    Case("missing method with an id", b'{"jsonrpc":"2.0","id":3}', ("error", -32600, 3)),
    Case(
        "params is a string", b'{"jsonrpc":"2.0","id":4,"method":"ping","params":"x"}', ("error", -32600, 4)
    ),
    Case(
        "params is an array", b'{"jsonrpc":"2.0","id":5,"method":"ping","params":[1,2]}', ("error", -32602, 5)
    ),
    Case("a 10 MiB line", b'"' + b"a" * TEN_MIB + b'"', ("error", -32600, None)),
    Case("invalid UTF-8", b'{"jsonrpc":"2.0","id":7,"method":"ping\xff\xfe"}', ("error", -32700, None)),
    Case("unknown method", b'{"jsonrpc":"2.0","id":8,"method":"no/such/method"}', ("error", -32601, 8)),
    Case("batch under 2025-11-25", b'[{"jsonrpc":"2.0","id":9,"method":"ping"}]', ("error", -32600, None)),
    Case("float id", b'{"jsonrpc":"2.0","id":10.5,"method":"ping"}', ("error", -32600, None)),
    Case("unknown notification", b'{"jsonrpc":"2.0","method":"notifications/no-such-thing"}', _NO_REPLY),
    Case("malformed notification", b'{"jsonrpc":"2.0","method":"notifications/x","params":"s"}', _NO_REPLY),
    Case("blank line", b"   ", _NO_REPLY),
    Case("stray response", b'{"jsonrpc":"2.0","id":"s1","result":{}}', _NO_REPLY),
    Case(
        "error response with id null",
        b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}',
        _NO_REPLY,
    ),
    Case("string id", b'{"jsonrpc":"2.0","id":"12","method":"ping"}', ("result", "12")),
    Case("integer id", b'{"jsonrpc":"2.0","id":13,"method":"ping"}', ("result", 13)),
]


def _check(case: Case, replies: list[dict[str, Any]]) -> None:
    if case.expect is _NO_REPLY:
        assert replies == [], f"{case.name}: this line must not be answered, got {replies}"
        return
    assert len(replies) == 1, f"{case.name}: expected exactly one reply before the ping's, got {replies}"
    reply = replies[0]
    if case.expect[0] == "result":
        _, want_id = case.expect
        assert reply.get("result") == {}, f"{case.name}: {reply}"
    else:
        _, code, want_id = case.expect
        assert "result" not in reply, f"{case.name}: {reply}"
        err = reply.get("error")
        assert isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"], (
            f"{case.name}: {reply}"
        )
        assert err.get("code") == code, f"{case.name}: expected code {code}, got {reply}"
    assert "id" in reply, f"{case.name}: a reply must carry an id member: {reply}"
    assert reply["id"] == want_id and type(reply["id"]) is type(want_id), (
        f"{case.name}: expected id {want_id!r} ({type(want_id).__name__}), got {reply['id']!r}"
    )


async def test_bad_lines_get_the_right_answer_and_the_session_survives(
    responders: Responders, bridge_argv: list[str], tmp_path: Path, subtests: pytest.Subtests
) -> None:
    """Each bad stdin line gets its JSON-RPC error (or no reply for a notification) and the next ping still succeeds."""
    responders.start("fs", "--fs-root", str(tmp_path))
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(30):
        async with bridge_process(bridge_argv, tmp_path) as bridge:
            await bridge.initialize()
            await bridge.ping(999)
            for n, case in enumerate(CASES):
                ping_id = 1000 + n
                with subtests.test(case.name):
                    await bridge.send(case.line)
                    await bridge.send_json({"jsonrpc": "2.0", "id": ping_id, "method": "ping"})
                    replies: list[dict[str, Any]] = []
                    while True:  # every line up to the ping's reply belongs to the bad line
                        msg = await bridge.recv()
                        if msg.get("id") == ping_id and type(msg.get("id")) is int and "method" not in msg:
                            assert msg.get("result") == {}, f"{case.name}: the ping after it failed: {msg}"
                            break
                        replies.append(msg)
                    _check(case, replies)
            # nothing late or stray is left on stdout: the next line is the reply to a fresh ping
            await bridge.ping(2000)
            assert bridge.proc.returncode is None, "the bridge exited during the bad input"


async def test_overlong_line_is_skipped_without_buffering_and_the_bridge_stays_up(
    bridge_argv: list[str], tmp_path: Path
) -> None:
    """A 10 MiB line above max_line_bytes (1 MiB here) is answered with -32600 (id null) and the next ping works."""
    with anyio.fail_after(20):
        async with bridge_process(
            bridge_argv, tmp_path, MCP_NATS_BRIDGE_MAX_LINE_BYTES=str(1024 * 1024)
        ) as bridge:
            await bridge.initialize()
            big = b'{"jsonrpc":"2.0","id":77,"method":"ping","params":{"pad":"' + b"a" * TEN_MIB + b'"}}'
            await bridge.send(big)
            reply = await bridge.recv()
            assert reply["id"] is None and reply["error"]["code"] == -32600, reply
            await bridge.ping(78)  # the skipped line did not swallow the one after it


async def test_closing_stdin_exits_within_a_second_with_clean_stdout(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """Closing stdin makes a connected bridge exit in under 1 s, and its stdout held only JSON-RPC 2.0 lines."""
    responders.start("fs", "--fs-root", str(tmp_path))
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(30):
        async with bridge_process(bridge_argv, tmp_path) as bridge:
            await bridge.initialize()
            await bridge.send_json({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            listed = await bridge.recv(timeout=10)
            assert any(t["name"] == "fs_read_text_file" for t in listed["result"]["tools"]), listed
            await bridge.ping(2)
            proc = bridge.proc
            assert proc.stdin is not None and proc.stdout is not None
            t0 = time.monotonic()
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                raise AssertionError(
                    f"the bridge did not exit within 5 s of stdin closing; stderr:\n{bridge.log()}"
                ) from None
            elapsed = time.monotonic() - t0
            rest = await asyncio.wait_for(proc.stdout.read(), 5)
            assert elapsed < 1.0, f"the bridge took {elapsed:.3f} s to exit after stdin closed"
            assert proc.returncode == 0, f"exit status {proc.returncode}; stderr:\n{bridge.log()}"
            lines = bridge.raw_lines + rest.splitlines(keepends=True)
            assert lines, "the bridge wrote nothing at all"
            for line in lines:
                assert line.endswith(b"\n"), f"a partial line on stdout: {line[:200]!r}"
                msg = json.loads(line)
                assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0", (
                    f"not a JSON-RPC line: {line[:200]!r}"
                )


async def test_tools_list_changed_notification_is_a_json_rpc_2_0_line(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """When a service appears after the handshake, the bridge's list_changed notification carries "jsonrpc":"2.0"."""
    with anyio.fail_after(30):
        async with bridge_process(bridge_argv, tmp_path) as bridge:
            await bridge.initialize()
            await bridge.send_json({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert (await bridge.recv(timeout=10))["result"]["tools"] == []
            responders.start("fs", "--fs-root", str(tmp_path))
            line = await bridge.recv_raw(timeout=15)
            assert json.loads(line) == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}, line
            await bridge.ping(2)

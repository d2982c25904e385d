"""Fuzzing with hypothesis (issue #11): the bridge's stdin and the responder's request bodies.

Each generated input goes to a real process (the `mcp-nats bridge` subprocess, or an fs responder over
NATS); after it, a valid request must still succeed within a bound: no crash, no hang. Memory stays
bounded (the processes' resident size is checked at the end). The fs root is read-only, so no
generated call can write. Bounded for `make test` (MCP_NATS_FUZZ_EXAMPLES, default 1500 per target,
about a minute in all); `make fuzz` runs many more.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import Bus, BusError, EmbeddedServer, connect
from schemas.config import NatsSettings

from .conftest import MCP_NATS, Responders, child_env

EXAMPLES = int(os.environ.get("MCP_NATS_FUZZ_EXAMPLES", "1500"))
BOUND_S = 10.0
MAX_RSS_MB = 400
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

TOOLS = [
    "read_text_file",
    "read_multiple_files",
    "list_directory",
    "directory_tree",
    "search_files",
    "grep_files",
    "get_file_info",
    "x",
    "_",
]
METHODS = ["ping", "initialize", "tools/list", "tools/call", "resources/list", "resources/read", "prompts/list", "prompts/get",
           "completion/complete", "resources/subscribe", "logging/setLevel", "notifications/cancelled", "notifications/initialized"]  # fmt: skip

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=20,
)
ids = st.one_of(
    st.integers(-(2**63), 2**63), st.text(max_size=20), st.none(), st.floats(allow_nan=False), st.booleans()
)


@st.composite
def rpc_lines(draw: st.DrawFn) -> bytes:
    """A stdin line: raw bytes, arbitrary JSON, or a JSON-RPC message with hostile parts."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300)).replace(b"\n", b" ")
    if kind == 1:
        return msgspec.json.encode(draw(json_value))
    msg: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "2.0", "1.0", 2]))}
    if draw(st.booleans()):
        msg["id"] = draw(ids)
    msg["method"] = draw(st.one_of(st.sampled_from(METHODS), st.text(max_size=30)))
    if kind == 3:
        msg["params"] = {
            "name": draw(st.one_of(st.sampled_from([f"fs_{t}" for t in TOOLS]), st.text(max_size=60))),
            "arguments": draw(st.one_of(json_value, st.fixed_dictionaries({"path": st.text(max_size=80)}))),
            "_meta": draw(st.one_of(st.just({}), st.fixed_dictionaries({"progressToken": json_leaf}))),
            "uri": draw(st.text(max_size=80)),
            "cursor": draw(st.one_of(st.none(), st.text(max_size=40))),
        }
    elif draw(st.booleans()):
        msg["params"] = draw(json_value)
    line = msgspec.json.encode(msg)
    return line if line.count(b"\n") == 0 else line.replace(b"\n", b" ")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bridge:
    """The real bridge as a subprocess; stdout lines read on a thread so every read is bounded."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.stderr = (cwd / "bridge.stderr").open("wb")
        self.proc = subprocess.Popen(
            [MCP_NATS, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=child_env(),
            cwd=cwd,
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def until(self, want_id: str) -> list[dict[str, Any]]:
        """Every reply up to and including the one with `want_id`; fails after BOUND_S."""
        seen: list[dict[str, Any]] = []
        end = time.monotonic() + BOUND_S
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            assert line is not None, f"the bridge exited ({self.proc.wait(5)})"
            msg = json.loads(line)
            assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0", line[:200]
            seen.append(msg)
            if msg.get("id") == want_id and ("result" in msg or "error" in msg):
                return seen
        raise AssertionError(f"no reply to {want_id} within {BOUND_S} s; the bridge hangs")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    d = tmp_path / "files"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha\n")
    (d / "sub" / "b.md").write_text("# beta\n")
    return d


@pytest.fixture
def fs_up(responders: Responders, files: Path) -> Responders:
    responders.start("fs", "--root", f"{files}:ro")
    asyncio.run(responders.wait_instances("fs", 1))
    return responders


@pytest.fixture
def bridge(fs_up: Responders, bridge_argv: list[str], tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(bridge_argv, tmp_path)
    b.send(json.dumps({"jsonrpc": "2.0", "id": "init", "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}}).encode())  # fmt: skip
    b.until("init")
    b.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    yield b
    b.close()


def test_fuzzed_stdin_never_crashes_or_hangs_the_bridge(bridge: Bridge, files: Path) -> None:
    """After any generated stdin line a valid tools/call still succeeds, the bridge stays up and its memory bounded."""

    @FUZZ
    @given(line=rpc_lines())
    def one(line: bytes) -> None:
        bridge.send(line)
        probe = "p" + uuid.uuid4().hex
        call = {"name": "fs_read_text_file", "arguments": {"path": str(files / "a.txt")}}
        bridge.send(
            json.dumps({"jsonrpc": "2.0", "id": probe, "method": "tools/call", "params": call}).encode()
        )
        reply = bridge.until(probe)[-1]
        assert "alpha" in json.dumps(reply.get("result")), reply

    one()
    assert bridge.proc.poll() is None
    assert rss_mb(bridge.proc.pid) < MAX_RSS_MB


class BusLoop:
    """A connected Bus on an event loop of its own, driven from synchronous hypothesis examples."""

    def __init__(self, url: str, root: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._cm = connect(
            NatsSettings(url=url, root=root, connect_timeout=2.0),
            name="fuzz",
            ident="fz" + uuid.uuid4().hex[:8],
        )
        self.bus: Bus = self.loop.run_until_complete(self._cm.__aenter__())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, BOUND_S))

    def close(self) -> None:
        self.loop.run_until_complete(self._cm.__aexit__(None, None, None))
        self.loop.close()


header_names = st.sampled_from(["Mcp-Deadline", "Mcp-Call-Id", "Mcp-Heartbeat", "Mcp-Protocol-Version", "Mcp-Client-Capabilities",
                                "Mcp-Log-Level", "traceparent", "Nats-Request-Info", "Mcp-Client", "X"])  # fmt: skip
header_values = st.text(st.characters(blacklist_categories=["Cc", "Cs"]), max_size=60)


def test_fuzzed_request_bodies_never_crash_or_hang_a_responder(
    fs_up: Responders, nats_server: EmbeddedServer, files: Path
) -> None:
    """Any body and headers on any fs subject get an answer (or a bus error) within the bound, and a valid
    call right after still succeeds; the responder stays up with bounded memory."""
    b = BusLoop(nats_server.url, fs_up.root)
    s = b.bus.subjects
    ops = [
        "tools.list",
        "discover",
        "resources.list",
        "resources.read",
        "resources.templates.list",
        "prompts.list",
        "completion.complete",
    ]
    good = msgspec.json.encode({"name": "read_text_file", "arguments": {"path": str(files / "a.txt")}})

    async def ask(subject: str, body: bytes, headers: dict[str, str] | None) -> None:
        try:
            await b.bus.request(subject, body, headers, timeout=BOUND_S - 1)
        except BusError:
            pass  # an error answer is fine; only silence or a crash is not

    try:

        @FUZZ
        @given(
            tool=st.one_of(st.sampled_from(TOOLS), st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)),
            op=st.one_of(st.none(), st.sampled_from(ops)),
            body=st.one_of(st.binary(max_size=400), json_value.map(msgspec.json.encode),
                           st.builds(lambda a, n: msgspec.json.encode({"name": n, "arguments": a}), json_value, st.sampled_from(TOOLS))),
            headers=st.one_of(st.none(), st.dictionaries(header_names, header_values, max_size=4)),
        )  # fmt: skip
        def one(tool: str, op: str | None, body: bytes, headers: dict[str, str] | None) -> None:
            subject = s.tool_call("fs", tool) if op is None else s.op("fs", op)
            b.run(ask(subject, body, headers))
            reply = b.run(b.bus.request(s.tool_call("fs", "read_text_file"), good, timeout=BOUND_S - 1))
            assert b"alpha" in reply.data, reply.data[:200]

        one()
    finally:
        b.close()
    proc = fs_up.procs[0]
    assert proc.poll() is None, "the responder exited"
    assert rss_mb(proc.pid) < MAX_RSS_MB

"""The stdio load generator: drives any newline-delimited JSON-RPC MCP server over raw pipes.

Owns one server process (its own process group, stdin/stdout pipes, stderr to a file). One
thread, no event loop: requests are pre-formatted bytes written with `os.write`, responses
are read with `os.read` under an epoll selector, split on newlines, and decoded with typed
msgspec decoders. Latency runs from just before the request bytes are written to just after
the `read()` that returned the response (decoding excluded), as performance.md section 2.1
defines it. Every response is checked: a known id of the exact JSON type, "jsonrpc": "2.0",
no error, a result of the expected shape, and the per-call marker in the raw line.

Fatal (raises LoadError with the stderr tail): silence past the timeout, EOF, a broken pipe.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

PROTOCOL: Final = "2025-06-18"
SILENCE_S: Final = 30.0


class LoadError(Exception):
    """Raised when the server under load goes silent, closes its stdout or cannot be spawned."""


class _Message(Struct):
    jsonrpc: str = ""
    id: int | str | None | UnsetType = UNSET
    method: str | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: Raw | UnsetType = UNSET


class _CallResult(Struct):
    content: list[Raw]
    isError: bool = False


class _ToolsList(Struct):
    tools: list[Raw]


class _Tool(Struct):
    name: str


class _Init(Struct):
    protocolVersion: str
    serverInfo: dict[str, object] = msgspec.field(default_factory=dict)


_msg_decoder: Final = msgspec.json.Decoder(_Message)
_call_decoder: Final = msgspec.json.Decoder(_CallResult)
_list_decoder: Final = msgspec.json.Decoder(_ToolsList)
_tool_decoder: Final = msgspec.json.Decoder(_Tool)
_init_decoder: Final = msgspec.json.Decoder(_Init)
_encoder: Final = msgspec.json.Encoder()


@dataclass(frozen=True)
class Workload:
    """What one phase sends: `tools/call` of `tool` with `args[i % len(args)]` (JSON bytes), or `tools/list`.

    `markers[i % len]` must appear in the raw response line, so a wrong payload fails instead of looking fast.
    """

    method: str
    tool: str = ""
    args: Sequence[bytes] = ()
    markers: Sequence[bytes] = ()

    def requests(self) -> Callable[[int], bytes]:
        if self.method == "tools/list":
            return lambda i: b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}\n' % i
        head = (
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"'
            + self.tool.encode()
            + b'","arguments":'
        )
        bodies = [a + b"}}\n" for a in self.args]
        n = len(bodies)
        return lambda i: (head % i) + bodies[i % n]


@dataclass
class Phase:
    """The outcome of one timed phase: latencies of the successes (ns), failures by reason."""

    mode: str
    k: int
    latencies: list[int] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    notifications: int = 0
    non_json: int = 0
    bytes_out: int = 0
    bytes_in: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def ops(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def pct(self, q: float) -> float:
        """The q-quantile of latency, in µs (nearest rank)."""
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))] / 1000


@dataclass
class Cold:
    """One spawn: seconds to the `initialize` result, to the first `tools/list` result, to exit after stdin closed."""

    initialize: float
    tools_list: float
    exit: float


class StdioServer:
    """One MCP server process driven over its stdio. Use `with StdioServer(...) as s:`."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None, stderr: Path
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.stderr_path = stderr
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._sel: selectors.BaseSelector | None = None
        self._out = -1
        self._in = -1
        self._next_id = 1_000_000_000  # handshake ids never collide with phase ids
        self.server_info: dict[str, object] = {}
        self.protocol = ""
        self.tools: list[str] = []
        self.spawned_at = 0.0

    # -- process ----------------------------------------------------------------------------

    def spawn(self) -> StdioServer:
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        err = open(self.stderr_path, "ab")  # noqa: SIM115 - the child owns it after Popen
        try:
            self.spawned_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as exc:
            raise LoadError(f"cannot start {self.argv[0]}: {exc}") from exc
        finally:
            err.close()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._out, False)
        self._sel = selectors.EpollSelector()
        self._sel.register(self._out, selectors.EVENT_READ)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr_tail(self, n: int = 1500) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def _fatal(self, what: str) -> LoadError:
        return LoadError(f"{self.argv[0]}: {what}; stderr tail:\n{self.stderr_tail()}")

    def close(self, grace: float = 5.0) -> float:
        """Close stdin the MCP stdio way and return the seconds until the process exited; then TERM/KILL the group."""
        p = self.proc
        if p is None:
            return 0.0
        t0 = time.perf_counter()
        try:
            assert p.stdin is not None
            p.stdin.close()
        except OSError:
            pass
        exited = _wait_exit(p, grace)
        took = time.perf_counter() - t0
        if not exited:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                if _wait_exit(p, 2.0):
                    break
            took = float("inf")
        else:
            try:  # anything the server left in its group (it should leave nothing)
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p.stdout is not None:
            p.stdout.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        self.proc = None
        return took

    def __enter__(self) -> StdioServer:
        return self.spawn()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw I/O ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._in, view)
            except BrokenPipeError:
                raise self._fatal("broken pipe (the server exited)") from None
            view = view[n:]

    def _read(self, timeout: float) -> tuple[list[bytes], int]:
        """Complete lines available now (waiting up to `timeout` for the first byte) and the read time (ns)."""
        assert self._sel is not None
        try:  # under load the answer is often there already: skip the epoll_wait
            chunk = os.read(self._out, 1 << 20)
        except BlockingIOError:
            if not self._sel.select(timeout):
                raise self._fatal(f"no output for {timeout:.0f} s") from None
            try:
                chunk = os.read(self._out, 1 << 20)
            except BlockingIOError:
                return [], time.perf_counter_ns()
        t = time.perf_counter_ns()
        if not chunk:
            raise self._fatal("end of output (the server exited)")
        data = self._buf + chunk if self._buf else chunk
        lines = data.split(b"\n")
        self._buf = lines.pop()
        return lines, t

    def _answer_server_request(self, msg: _Message) -> None:
        """Server-to-client requests: `ping` gets `{}`, anything else method-not-found."""
        ident = _encoder.encode(msg.id)
        if msg.method == "ping":
            self._write(b'{"jsonrpc":"2.0","id":%s,"result":{}}\n' % ident)
        else:
            self._write(
                b'{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"not supported"}}\n' % ident
            )

    def rpc(
        self, method: str, params: object | None = None, *, timeout: float = SILENCE_S
    ) -> tuple[bytes, float]:
        """One request; returns (raw result, seconds) or raises LoadError on an error response."""
        self._next_id += 1
        rid = self._next_id
        req: dict[str, object] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        t0 = time.perf_counter()
        self._write(_encoder.encode(req) + b"\n")
        end = t0 + timeout
        while True:
            lines, _ = self._read(max(0.001, end - time.perf_counter()))
            for line in lines:
                try:
                    msg = _msg_decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                if msg.method is not UNSET:
                    if msg.id is not UNSET:
                        self._answer_server_request(msg)
                    continue
                if msg.id == rid and type(msg.id) is int:
                    if msg.error is not UNSET or msg.result is UNSET:
                        raise self._fatal(f"{method} failed: {line[:300]!r}")
                    return bytes(msg.result), time.perf_counter() - t0

    def notify(self, method: str) -> None:
        self._write(_encoder.encode({"jsonrpc": "2.0", "method": method}) + b"\n")

    def handshake(self, need_tool: str | None = None) -> tuple[float, float]:
        """initialize -> notifications/initialized -> tools/list; returns seconds since spawn to each result."""
        raw, _ = self.rpc(
            "initialize",
            {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "mcp-nats-bench", "version": "0"},
            },
        )
        t_init = time.perf_counter() - self.spawned_at
        init = _init_decoder.decode(raw)
        self.protocol, self.server_info = init.protocolVersion, init.serverInfo
        self.notify("notifications/initialized")
        raw, _ = self.rpc("tools/list")
        t_list = time.perf_counter() - self.spawned_at
        self.tools = [_tool_decoder.decode(t).name for t in _list_decoder.decode(raw).tools]
        if need_tool is not None and need_tool not in self.tools:
            raise self._fatal(f"tool {need_tool!r} is not listed (tools: {', '.join(self.tools)})")
        return t_init, t_list

    # -- phases -----------------------------------------------------------------------------

    def run(self, work: Workload, *, k: int, count: int, max_seconds: float = 1e9, mode: str = "") -> Phase:
        """Keep `k` requests in flight (k=0: sequential, one at a time) until `count` or `max_seconds`, then drain."""
        window = max(1, k)
        phase = Phase(mode or ("seq" if k == 0 else f"pipe{k}"), k)
        make = work.requests()
        check_call = work.method == "tools/call"
        markers = work.markers
        nmark = len(markers)
        sent: dict[int, int] = {}
        lat = phase.latencies
        fail = phase.failures
        clock = time.perf_counter_ns
        issued = 0
        t_start = time.perf_counter()
        stop_at = t_start + max_seconds

        def fill() -> None:
            nonlocal issued
            n = min(window - len(sent), count - issued)
            if n <= 0 or (issued and time.perf_counter() >= stop_at):
                return
            if n == 1:
                data = make(issued)
            else:
                data = b"".join(make(i) for i in range(issued, issued + n))
            t0 = clock()
            self._write(data)
            for i in range(issued, issued + n):
                sent[i] = t0
            phase.bytes_out += len(data)
            issued += n

        fill()
        while sent:
            lines, t = self._read(SILENCE_S)
            for line in lines:
                if not line.strip():
                    continue
                phase.bytes_in += len(line) + 1
                try:
                    msg = _msg_decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    phase.non_json += 1
                    continue
                if msg.method is not UNSET:
                    if msg.id is UNSET:
                        phase.notifications += 1
                    else:
                        self._answer_server_request(msg)
                    continue
                rid = msg.id
                if type(rid) is not int or rid not in sent:
                    fail["unknown id"] += 1
                    continue
                t0 = sent.pop(rid)
                if msg.jsonrpc != "2.0":
                    fail["jsonrpc is not 2.0"] += 1
                elif msg.error is not UNSET:
                    fail["error response"] += 1
                elif msg.result is UNSET:
                    fail["no result"] += 1
                elif check_call:
                    try:
                        r = _call_decoder.decode(msg.result)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        fail["result is not a CallToolResult"] += 1
                        continue
                    if r.isError:
                        fail["isError"] += 1
                    elif nmark and markers[rid % nmark] not in line:
                        fail["wrong payload (marker missing)"] += 1
                    else:
                        lat.append(t - t0)
                else:
                    try:
                        _list_decoder.decode(msg.result)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        fail["result is not a tools list"] += 1
                        continue
                    lat.append(t - t0)
            if k == 0:
                if not sent:
                    fill()
            elif len(sent) < window:
                fill()
        phase.elapsed = time.perf_counter() - t_start
        return phase


def _wait_exit(p: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for exit without Popen.wait's sleep-poll (its granularity would blur a 15 ms exit)."""
    if p.poll() is not None:
        return True
    try:
        fd = os.pidfd_open(p.pid)
    except (OSError, AttributeError):
        try:
            p.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        sel = selectors.EpollSelector()
        sel.register(fd, selectors.EVENT_READ)
        ready = sel.select(timeout)
        sel.close()
    finally:
        os.close(fd)
    if ready:
        p.wait()
        return True
    return p.poll() is not None


def cold_start(
    argv: Sequence[str], *, env: dict[str, str] | None, cwd: str | None, stderr: Path, need_tool: str
) -> Cold:
    """Spawn once: spawn -> `initialize` result -> first `tools/list` result; then stdin close -> exit."""
    s = StdioServer(argv, env=env, cwd=cwd, stderr=stderr).spawn()
    try:
        t_init, t_list = s.handshake(need_tool)
    except BaseException:
        s.close(1.0)
        raise
    return Cold(t_init, t_list, s.close())

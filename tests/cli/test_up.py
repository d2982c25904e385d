"""`mcp-nats up` as users run it: from nothing to the `claude mcp add` line, and Ctrl-C stops
everything it started (the embedded nats-server and the fs responder), leaving nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from bus import EmbeddedServer, NotConnected, connect, probe
from bus.embedded import MIN_VERSION
from schemas import bus as h
from schemas.config import DEFAULT_URL, NatsSettings

from ..conftest import MCP_NATS, child_env

CLAUDE_LINE = "claude mcp add nats"


class Up:
    """One `mcp-nats up` process: stdout read line by line on a thread, stderr in a file."""

    def __init__(self, cwd: Path, state: Path, env: dict[str, str]) -> None:
        self.state = state
        self.stderr_path = cwd / "up.stderr"
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self.pids: list[int] = []  # descendants we learn about, killed in close() if still alive
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [MCP_NATS, "up", "--state-dir", str(state), "--log-level", "info"],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._q.put(raw.decode(errors="replace").rstrip("\n"))
        self._q.put(None)

    def output(self) -> str:
        try:
            err = self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            err = ""
        return "stdout:\n" + "\n".join(self.lines) + "\nstderr (tail):\n" + err

    def wait_line(self, needle: str, timeout: float = 30.0) -> str:
        """The first stdout line containing `needle` (earlier lines are kept in self.lines); bounded."""
        for line in self.lines:
            if needle in line:
                return line
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                got = self._q.get(timeout=left)
            except queue.Empty:
                break
            if got is None:
                raise AssertionError(
                    f"up exited ({self.proc.wait(5)}) before printing {needle!r}\n{self.output()}"
                )
            self.lines.append(got)
            if needle in got:
                return got
        raise AssertionError(f"no line with {needle!r} within {timeout} s\n{self.output()}")

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C: SIGINT to `up` alone (as the terminal would, its server runs in its own session); the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"up did not exit within {timeout} s of SIGINT\n{self.output()}") from None
        self._reader.join(5)
        while (line := self._q.get_nowait() if not self._q.empty() else None) is not None:
            self.lines.append(line)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.pids:  # only if `up` failed to stop them: never leave them behind
            if process_state(pid) not in (None, "Z"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[object]:
    started: list[Up] = []

    def start(**env: str) -> Up:
        up = Up(tmp_path, tmp_path / "state", child_env(**env))
        started.append(up)
        return up

    yield start
    for up in started:
        up.close()


def process_state(pid: int) -> str | None:
    """The process's state letter from /proc (Z: exited, not yet reaped), or None when no such process exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def assert_gone(pid: int, what: str, timeout: float = 10.0) -> None:
    """Bounded poll until `pid` no longer exists. Our processes' orphans are reaped by their new parent
    (init or a subreaper), not by us; a zombie left after the timeout has exited, which is what matters."""
    end = time.monotonic() + timeout
    state = process_state(pid)
    while state is not None and time.monotonic() < end:
        time.sleep(0.05)
        state = process_state(pid)
    assert state in (None, "Z"), f"{what} (pid {pid}) is still running (state {state}) after `up` exited"


def responder_pids(
    url: str, root: str = "mcp", timeout: float = 10.0, credentials: Path | None = None
) -> list[int]:
    """The pids the fs instances under `root` report in their $SRV.PING metadata (bounded wait for one).
    `credentials`: the admin.creds of an embedded server `up` started (auth is on by default)."""

    async def ping() -> list[int]:
        settings = NatsSettings(url=url, root=root, connect_timeout=2.0, credentials=str(credentials or ""))
        end = time.monotonic() + timeout
        async with connect(settings, name="test", ident="t" + uuid.uuid4().hex[:8]) as bus:
            while True:
                replies = await bus.scatter(f"$SRV.PING.{root}-fs", idle=0.2, limit=1.0)
                metas = [msgspec.json.decode(r.data)["metadata"] for r in replies]
                pids = [int(m["pid"]) for m in metas if m.get(h.META_ROOT) == root]
                if pids or time.monotonic() > end:
                    return pids
                await asyncio.sleep(0.1)

    return asyncio.run(ping())


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def default_server_refused() -> str | None:
    """Why `up` would refuse the server at the default URL, or None when it would reuse it."""
    from cli.up import check_server

    return check_server(DEFAULT_URL)


def test_up_prints_the_claude_line_and_ctrl_c_stops_server_and_responder(
    start_up: object, tmp_path: Path
) -> None:
    """`up` starts its own server and fs, prints `claude mcp add` with the absolute mcp-nats path, and SIGINT exits 0 leaving neither process."""
    if default_server_refused() is None:
        pytest.skip(
            f"a suitable NATS server answers at {DEFAULT_URL}; up would reuse it instead of starting one"
        )
    up: Up = start_up()  # type: ignore[operator]
    state = tmp_path / "state"
    try:
        started = up.wait_line("Starting an embedded nats-server (")
        line = up.wait_line(CLAUDE_LINE)
        assert os.path.isabs(MCP_NATS)
        assert f"-- {shlex.quote(MCP_NATS)} bridge" in line, line
        assert f"MCP_NATS_STATE_DIR={shlex.quote(str(state.resolve()))}" in line, line
        assert any(f"fs is serving {os.path.realpath(tmp_path)}" in seen for seen in up.lines), up.output()

        url = (state / "nats.url").read_text().strip()
        assert url.startswith("nats://127.0.0.1:") and url != DEFAULT_URL, started
        server_pid = int((state / "server" / "nats-server.pid").read_text().strip())
        up.pids.append(server_pid)
        assert parent_of(server_pid) == up.proc.pid, "the nats-server is up's own child"
        with pytest.raises(NotConnected):  # auth is on by default for the embedded server
            responder_pids(url, timeout=0)
        pids = responder_pids(url, credentials=state / "auth" / "admin.creds")
        assert len(pids) == 1, f"expected one fs responder, got pids {pids}"
        responder = pids[0]
        up.pids.append(responder)
        assert parent_of(responder) == up.proc.pid, "the fs responder is up's own child"
        assert process_state(server_pid) not in (None, "Z") and process_state(responder) not in (None, "Z")

        assert up.interrupt() == 0, up.output()
        assert_gone(responder, "the fs responder")
        assert_gone(server_pid, "the embedded nats-server")
        assert "Stopping..." in up.lines
        assert not (state / "nats.url").exists(), "the URL of a stopped server must not be left for bridges"
    finally:
        up.close()


def test_up_reuses_a_suitable_server_at_the_configured_url(
    start_up: object, nats_server: EmbeddedServer, tmp_path: Path
) -> None:
    """With MCP_NATS_URL at a running JetStream server >= 2.11, `up` uses it and starts no server of its own."""
    up: Up = start_up(MCP_NATS_URL=nats_server.url)  # type: ignore[operator]
    state = tmp_path / "state"
    try:
        assert up.wait_line("NATS server") == f"Using the NATS server at {nats_server.url}"
        line = up.wait_line(CLAUDE_LINE)
        assert f"--url {nats_server.url}" in line, line
        assert not any("Starting an embedded" in seen for seen in up.lines), up.output()
        assert not (state / "server").exists(), "no embedded server directory when reusing one"
        assert (state / "nats.url").read_text().strip() == nats_server.url
        pids = responder_pids(nats_server.url)
        assert len(pids) == 1, pids
        up.pids.extend(pids)
        assert parent_of(pids[0]) == up.proc.pid
        assert up.interrupt() == 0, up.output()
        assert_gone(pids[0], "the fs responder")
        assert nats_server.running, "up must not stop a server it did not start"
    finally:
        up.close()


def test_up_refuses_an_old_server_on_the_default_port(start_up: object, tmp_path: Path) -> None:
    """A NATS older than 2.11 on 127.0.0.1:4222 is refused with its version named, and `up` starts its own server."""
    if not listening(4222):
        pytest.skip("nothing listens on 127.0.0.1:4222, so there is no old server to refuse")
    try:
        version = asyncio.run(probe(DEFAULT_URL, timeout=2.0)).version
    except NotConnected as exc:
        pytest.skip(f"what listens on 4222 is not a NATS server ({exc})")
    if default_server_refused() is None:
        pytest.skip(f"the NATS server on 4222 is {version}, new enough: up would reuse it")
    up: Up = start_up()  # type: ignore[operator]
    try:
        refused = up.wait_line("Starting an embedded nats-server (")
        if tuple(int(p) for p in version.split("-")[0].split(".")[:2]) < MIN_VERSION:
            assert f"is version {version}" in refused and "needs 2.11 or newer" in refused, refused
        listening_line = up.wait_line(" listening on nats://127.0.0.1:")
        port = int(listening_line.rsplit(":", 1)[1].split(",")[0])
        assert port != 4222
        line = up.wait_line(CLAUDE_LINE)
        assert "--url" not in line, "the URL is found through the state directory, not pinned on the line"
        assert (tmp_path / "state" / "nats.url").read_text().strip() == f"nats://127.0.0.1:{port}"
        up.pids.append(int((tmp_path / "state" / "server" / "nats-server.pid").read_text()))
        assert up.interrupt() == 0, up.output()
    finally:
        up.close()


def test_closing_the_terminal_stops_the_embedded_server(start_up: object, tmp_path: Path) -> None:
    """SIGHUP to `up` (its terminal closed) stops the nats-server it started, as Ctrl-C does."""
    if default_server_refused() is None:
        pytest.skip(
            f"a suitable NATS server answers at {DEFAULT_URL}; up would reuse it instead of starting one"
        )
    up: Up = start_up()  # type: ignore[operator]
    try:
        up.wait_line(CLAUDE_LINE)
        server_pid = int((tmp_path / "state" / "server" / "nats-server.pid").read_text())
        up.pids.append(server_pid)
        up.pids.extend(
            responder_pids(
                (tmp_path / "state" / "nats.url").read_text().strip(),
                credentials=tmp_path / "state" / "auth" / "admin.creds",
            )
        )
        up.proc.send_signal(signal.SIGHUP)
        up.proc.wait(30)
        for pid in up.pids:
            assert_gone(pid, "a process `up` started", timeout=2.0)
    finally:
        up.close()


def test_ctrl_c_while_the_server_starts_leaves_no_server(start_up: object, tmp_path: Path) -> None:
    """A Ctrl-C that arrives while `up` waits for its nats-server to become ready still stops that server.

    The server is a wrapper ($MCP_NATS_SERVER_BINARY) that answers --version at once but holds the real
    server back until the test says so, so the Ctrl-C lands in the wait every time (no race to lose)."""
    if default_server_refused() is None:
        pytest.skip(
            f"a suitable NATS server answers at {DEFAULT_URL}; up would reuse it instead of starting one"
        )
    real = EmbeddedServer(tmp_path / "probe").binary
    held = tmp_path / "held.pid"
    go = tmp_path / "go"
    wrapper = tmp_path / "nats-server-held"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then exec {shlex.quote(real)} --version; fi\n'
        f"echo $$ > {shlex.quote(str(held))}.tmp && mv {shlex.quote(str(held))}.tmp {shlex.quote(str(held))}\n"
        f"i=0; while [ ! -e {shlex.quote(str(go))} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n"
        f'exec {shlex.quote(real)} "$@"\n'
    )
    wrapper.chmod(0o755)
    up: Up = start_up(MCP_NATS_SERVER_BINARY=str(wrapper))  # type: ignore[operator]
    try:
        end = time.monotonic() + 15
        while not held.exists() and time.monotonic() < end and up.proc.poll() is None:
            time.sleep(0.01)
        assert held.exists(), f"the server was never started\n{up.output()}"
        server_pid = int(held.read_text())
        up.pids.append(server_pid)
        assert not (
            tmp_path / "state" / "server" / "nats-server.log"
        ).exists()  # not ready: `up` is waiting in start()
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(10) == 0  # at once, not after the readiness timeout (15 s)
        assert_gone(server_pid, "the nats-server started by the interrupted `up`", timeout=5.0)
    finally:
        go.touch()
        up.close()


def test_a_server_binary_that_is_not_nats_server_is_refused_by_name(tmp_path: Path) -> None:
    """$MCP_NATS_SERVER_BINARY pointing at something that is not a nats-server is refused with a sentence naming it."""
    bogus = tmp_path / "not-nats"
    bogus.write_text("#!/bin/sh\necho hello\n")
    bogus.chmod(0o755)
    done = subprocess.run(
        [MCP_NATS, "up", "--state-dir", str(tmp_path / "state"), "--url", "nats://127.0.0.1:1"],
        env=child_env(MCP_NATS_SERVER_BINARY=str(bogus)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"$MCP_NATS_SERVER_BINARY={bogus} is not an executable nats-server" in done.stderr

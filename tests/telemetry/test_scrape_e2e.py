"""A real Prometheus finds a running stack through file-based discovery and counts its calls."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from ..conftest import Responders
from ..e2e_helpers import bridge_client
from .conftest import PrometheusBinaries

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as r:
        data: dict[str, object] = json.loads(r.read())
        return data


class Prometheus:
    """A prometheus process on a free loopback port, its data under tmp, scraping <state>/prometheus/*.json."""

    def __init__(self, binary: str, tmp: Path, state_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        # The scrape job of infra/prometheus.yml, with intervals short enough for a test.
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: mcp-nats\n"
            "    file_sd_configs:\n"
            f"      - files: ['{state_dir / 'prometheus'}/*.json']\n"
            "        refresh_interval: 1s\n"
        )
        self.log = tmp / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready within {timeout} s")

    def query(self, expr: str) -> list[dict[str, object]]:
        data = _get_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        result = data["data"]["result"]  # type: ignore[index]
        assert isinstance(result, list)
        return result

    def targets(self) -> list[dict[str, object]]:
        data = _get_json(f"{self.url}/api/v1/targets?state=active")
        active = data["data"]["activeTargets"]  # type: ignore[index]
        assert isinstance(active, list)
        return active

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def prometheus(prometheus_bin: PrometheusBinaries, tmp_path: Path, state_dir: Path) -> Iterator[Prometheus]:
    prom = Prometheus(prometheus_bin.prometheus, tmp_path, state_dir)
    try:
        prom.wait_ready()
        yield prom
    finally:
        prom.stop()


async def _until(what: str, check: object, timeout: float = 30.0) -> None:
    """Poll `check()` (in a thread: it does blocking HTTP) until it returns True, for at most `timeout` s."""
    end = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < end:
        last = await asyncio.to_thread(check)  # type: ignore[arg-type]
        if last is True:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what} within {timeout} s (last: {last!r})")


async def test_prometheus_scrapes_discovered_processes_and_counts_every_call(
    prometheus: Prometheus, responders: Responders, bridge_argv: list[str], state_dir: Path, tmp_path: Path
) -> None:
    """Two responders and a bridge appear as file-SD targets; sum(mcp_tool_calls_total) equals the calls made, errors included."""
    env = {"MCP_NATS_STATE_DIR": str(state_dir)}
    (tmp_path / "a.txt").write_text("a\n")
    responders.start("fs", "--fs-root", str(tmp_path), env=env)
    responders.start("fs", "--fs-root", str(tmp_path), env=env)
    await responders.wait_instances("fs", 2)
    ok, failed = 6, 2
    with anyio.fail_after(90):
        async with bridge_client(bridge_argv, mode="legacy", env=env) as client:
            for _ in range(ok):
                result = await client.call_tool("fs_read_text_file", {"path": str(tmp_path / "a.txt")})
                assert not result.is_error
            for _ in range(failed):
                result = await client.call_tool("fs_read_text_file", {"path": "x", "head": "ten"})
                assert result.is_error

            def roles() -> object:
                found = sorted(str(t["labels"]["role"]) for t in prometheus.targets() if t["health"] == "up")  # type: ignore[index]
                return True if found == ["bridge", "responder", "responder"] else found

            await _until("the bridge and both responders are scraped", roles)

            def calls() -> object:
                result = prometheus.query("sum(mcp_tool_calls_total)")
                return True if result and float(result[0]["value"][1]) == ok + failed else result  # type: ignore[index]

            await _until(f"sum(mcp_tool_calls_total) == {ok + failed}", calls)
            by_outcome = {
                str(r["metric"]["outcome"]): float(r["value"][1])  # type: ignore[index]
                for r in prometheus.query('sum by (outcome) (mcp_tool_calls_total{service="fs"})')
            }
            assert by_outcome.get("ok") == ok and by_outcome.get("tool_error") == failed

            def bridge_calls() -> object:
                result = prometheus.query('sum(mcp_bridge_requests_total{method="tools/call"})')
                return True if result and float(result[0]["value"][1]) == ok + failed else result  # type: ignore[index]

            await _until("the bridge counted every tools/call", bridge_calls)
    files = sorted(p.name for p in (state_dir / "prometheus").glob("*.json"))
    assert [f for f in files if f.startswith("bridge-")] == []  # the bridge removed its target on exit
    assert len([f for f in files if f.startswith("responder-fs-")]) == 2

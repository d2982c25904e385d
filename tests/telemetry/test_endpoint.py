"""/metrics over real sockets, file-SD target files, and the per-role facade."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.config import MetricsSettings, Settings
from telemetry import EndpointError, Telemetry
from telemetry.endpoint import serve_metrics
from telemetry.filesd import remove_stale, sd_dir, sd_target, target_address
from telemetry.metrics import ConnectionMetrics, new_registry


async def _get(port: int, path: str = "/metrics", accept: str = "") -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n" + (f"Accept: {accept}\r\n" if accept else "") + "\r\n"
    writer.write(head.encode())
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    status, _, rest = data.partition(b"\r\n")
    return status.decode(), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.anyio
async def test_metrics_endpoint_serves_the_registry_on_a_free_port() -> None:
    """Port 0 binds a free port; GET /metrics returns the registry in the text format, other paths 404."""
    registry = new_registry()
    ConnectionMetrics(registry).reconnected()
    async with serve_metrics(registry, "127.0.0.1", 0) as port:
        assert port > 0
        status, body = await _get(port)
        assert status == "HTTP/1.1 200 OK"
        assert b"mcp_nats_reconnects_total 1.0" in body
        status, body = await _get(port, accept="application/openmetrics-text; version=1.0.0")
        assert b"# EOF" in body
        status, _ = await _get(port, "/other")
        assert status == "HTTP/1.1 404 Not Found"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.anyio
async def test_a_taken_port_is_an_endpoint_error() -> None:
    """Binding a port that is in use raises EndpointError naming the address."""
    async with serve_metrics(new_registry(), "127.0.0.1", 0) as port:
        with pytest.raises(EndpointError) as info:
            async with serve_metrics(new_registry(), "127.0.0.1", port):
                pass
    assert info.value.port == port


def test_target_file_is_written_whole_and_removed_on_exit(tmp_path: Path) -> None:
    """The file holds one target group with our pid, and disappears when the block ends."""
    with sd_target(
        tmp_path, "responder-fs-abc", "127.0.0.1:1234", {"role": "responder", "service": "fs"}
    ) as path:
        assert path.parent == sd_dir(tmp_path)
        (group,) = json.loads(path.read_text())
        assert group["targets"] == ["127.0.0.1:1234"]
        assert group["labels"]["service"] == "fs" and group["labels"]["pid"].isdigit()
        assert [p.name for p in sd_dir(tmp_path).iterdir()] == [path.name]
    assert not path.exists()


def test_stale_target_files_are_removed(tmp_path: Path) -> None:
    """A target file whose pid has exited is removed at the next start; a live one and an unreadable one stay."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    directory = sd_dir(tmp_path)
    directory.mkdir(parents=True)
    (directory / "old.json").write_text(
        json.dumps([{"targets": ["127.0.0.1:1"], "labels": {"pid": dead.stdout.strip()}}])
    )
    (directory / "live.json").write_text(json.dumps([{"targets": ["127.0.0.1:2"], "labels": {"pid": "1"}}]))
    (directory / "hand.json").write_text("not json")
    assert [p.name for p in remove_stale(directory)] == ["old.json"]
    assert sorted(p.name for p in directory.iterdir()) == ["hand.json", "live.json"]


def test_target_address_reaches_wildcard_binds_on_loopback() -> None:
    """0.0.0.0 and :: are scraped on 127.0.0.1; IPv6 literals are bracketed."""
    assert target_address("0.0.0.0", 9) == "127.0.0.1:9"
    assert target_address("::1", 9) == "[::1]:9"
    assert target_address("10.0.0.2", 9) == "10.0.0.2:9"


@pytest.mark.anyio
async def test_responder_facade_wires_metrics_and_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telemetry.responder serves /metrics, writes its target with role/service/instance labels, and hands back call and audit observers."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    settings = Settings(log_format="json")
    async with Telemetry.responder(settings, service="fs", instance="i1", state_dir=tmp_path) as t:
        assert t.port and t.target_file is not None and t.tracing is None
        labels = json.loads(t.target_file.read_text())[0]["labels"]
        assert labels["role"] == "responder" and labels["service"] == "fs" and labels["instance"] == "i1"
        assert [type(o).__name__ for o in t.observers.calls] == ["LogContext", "ResponderMetrics"]
        assert len(t.observers.audit) == 1 and len(t.observers.connection) == 1
        status, body = await _get(t.port)
        assert b"mcp_tool_calls_in_flight" in body
    assert not t.target_file.exists()


@pytest.mark.anyio
async def test_disabled_metrics_install_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[metrics] enabled = false, text logs and no OTLP endpoint: no observers, no endpoint, no file."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    settings = Settings(metrics=MetricsSettings(enabled=False))
    async with Telemetry.bridge(settings, instance="b1", state_dir=tmp_path) as t:
        assert t.observers.calls == () and t.observers.bridge == () and t.observers.connection == ()
        assert t.port is None and t.registry is None
    assert not sd_dir(tmp_path).exists()


@pytest.mark.anyio
async def test_a_taken_port_stops_a_responder_but_not_a_bridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With [metrics] port taken, Telemetry.responder raises EndpointError; Telemetry.bridge runs on without metrics."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    async with serve_metrics(new_registry(), "127.0.0.1", 0) as port:
        settings = Settings(metrics=MetricsSettings(port=port))
        with pytest.raises(EndpointError):
            async with Telemetry.responder(settings, service="fs", instance="i1", state_dir=tmp_path):
                pass
        async with Telemetry.bridge(settings, instance="b1", state_dir=tmp_path) as t:
            assert t.port is None and t.registry is None and t.observers.bridge == ()
    assert list(sd_dir(tmp_path).glob("*.json")) == []

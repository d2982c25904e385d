"""`mcp-nats backup` / `restore`: audit records, memory entities and the auth directory come back whole
in a fresh server and state directory; a damaged backup is refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from bus import Bus, EmbeddedServer, JetStream, StreamNotFound, connect, delete_stream, stream_name
from schemas.config import NatsSettings

from ..audit_helpers import read_records
from ..conftest import MCP_NATS, Responders, child_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
CALLS = 25
PER_CALL = 4


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MCP_NATS, *argv], env=child_env(), capture_output=True, text=True, timeout=60, check=False
    )


async def _memory_calls(bus: Bus, root: str) -> tuple[set[str], set[str]]:
    """CALLS create_entities calls; returns (call ids, entity names)."""
    ids: set[str] = set()
    names: set[str] = set()
    for i in range(CALLS):
        call_id = f"bk-{uuid.uuid4().hex}"
        entities: list[dict[str, Any]] = [
            {"name": f"e{i}-{j}", "entityType": "thing", "observations": [f"obs {i} {j}"]}
            for j in range(PER_CALL)
        ]
        names |= {e["name"] for e in entities}
        body = msgspec.json.encode({"name": "create_entities", "arguments": {"entities": entities}})
        reply = await bus.request(
            f"{root}.memory.tools.call.create_entities", body, {"Mcp-Call-Id": call_id}, timeout=10
        )
        assert not msgspec.json.decode(reply.data).get("isError")
        ids.add(call_id)
    return ids, names


async def _graph_names(bus: Bus, root: str) -> set[str]:
    body = msgspec.json.encode({"name": "read_graph", "arguments": {}})
    reply = await bus.request(f"{root}.memory.tools.call.read_graph", body, timeout=10)
    graph = msgspec.json.decode(reply.data)["structuredContent"]
    return {e["name"] for e in graph["entities"]}


async def _wait_records(bus: Bus, root: str, count: int) -> list[Any]:
    while True:
        records = await read_records(bus, root)
        if len(records) >= count:
            return records
        await asyncio.sleep(0.05)


async def test_backup_then_restore_into_a_fresh_server_keeps_every_record_and_entity(
    tmp_path: Path, root: str
) -> None:
    """Every audit record (by call id) and every memory entity is found in a fresh server after restore; auth files keep bytes and mode."""
    state_a, state_b, target = tmp_path / "state-a", tmp_path / "state-b", tmp_path / "backup"
    creds = state_a / "auth" / "creds" / "bridge.creds"
    creds.parent.mkdir(parents=True)
    creds.write_text("-----BEGIN NATS USER JWT-----\nnot-a-real-jwt\n------END NATS USER JWT------\n")
    creds.chmod(0o600)
    a = EmbeddedServer(tmp_path / "a", http_port=-1).start()
    try:
        ra = Responders(a.url, root)
        try:
            ra.start("memory")
            await ra.wait_instances("memory", 1)
            with anyio.fail_after(60):
                async with connect(
                    NatsSettings(url=a.url, root=root), name="t", ident="ta" + uuid.uuid4().hex[:6]
                ) as bus:
                    ids, names = await _memory_calls(bus, root)
                    records = await _wait_records(bus, root, CALLS)
                    assert {r.callId for r in records} >= ids
                    audit_count = len(records)
        finally:
            ra.stop_all()
        done = run(
            "backup", str(target), "--nats-url", a.url, "--subject-root", root, "--state-dir", str(state_a)
        )
        assert done.returncode == 0, done.stderr
    finally:
        a.stop()
    manifest = json.loads((target / "manifest.json").read_text())
    by_kind = {s["kind"]: s for s in manifest["streams"]}
    assert by_kind["audit"]["messages"] == audit_count
    assert by_kind["memory"]["messages"] >= len(names)
    assert [f["path"] for f in manifest["files"]] == ["auth/creds/bridge.creds"]

    b = EmbeddedServer(tmp_path / "b", http_port=-1).start()
    try:
        done = run(
            "restore", str(target), "--nats-url", b.url, "--subject-root", root, "--state-dir", str(state_b)
        )
        assert done.returncode == 0, done.stderr
        restored = state_b / "auth" / "creds" / "bridge.creds"
        assert restored.read_bytes() == creds.read_bytes() and restored.stat().st_mode & 0o777 == 0o600
        again = run(
            "restore",
            str(target),
            "--nats-url",
            b.url,
            "--subject-root",
            root,
            "--state-dir",
            str(tmp_path / "state-c"),
        )
        assert again.returncode == 1 and "exists" in again.stderr  # never overwrites a stream silently
        rb = Responders(b.url, root)
        try:
            rb.start("memory")
            await rb.wait_instances("memory", 1)
            with anyio.fail_after(60):
                async with connect(
                    NatsSettings(url=b.url, root=root), name="t", ident="tb" + uuid.uuid4().hex[:6]
                ) as bus:
                    got = await read_records(bus, root)
                    assert {r.callId for r in got[:audit_count]} == {r.callId for r in records}
                    assert await _graph_names(bus, root) == names
        finally:
            rb.stop_all()
    finally:
        b.stop()


async def test_a_damaged_backup_is_refused_before_anything_is_restored(
    tmp_path: Path, nats_server: EmbeddedServer, root: str
) -> None:
    """A snapshot file that no longer matches its checksum makes restore exit 1 and create no stream."""
    async with connect(
        NatsSettings(url=nats_server.url, root=root), name="t", ident="td" + uuid.uuid4().hex[:6]
    ) as bus:
        js = JetStream(bus)
        from bus import events_stream
        from schemas.config import EventsSettings

        await js.ensure_stream(events_stream(root, EventsSettings()))
        await js.publish(f"{root}.events.x.lifecycle", b"{}")
        target = tmp_path / "backup"
        done = run(
            "backup",
            str(target),
            "--nats-url",
            nats_server.url,
            "--subject-root",
            root,
            "--state-dir",
            str(tmp_path / "s"),
        )
        assert done.returncode == 0, done.stderr
        snap = target / "streams" / f"{stream_name('events', root)}.snap"
        data = bytearray(snap.read_bytes())
        data[len(data) // 2] ^= 0xFF
        snap.write_bytes(bytes(data))
        await delete_stream(bus, stream_name("events", root))
        done = run(
            "restore",
            str(target),
            "--nats-url",
            nats_server.url,
            "--subject-root",
            root,
            "--state-dir",
            str(tmp_path / "s2"),
        )
        assert done.returncode == 1 and "checksum" in done.stderr
        with pytest.raises(StreamNotFound):
            await js.stream_state(stream_name("events", root))

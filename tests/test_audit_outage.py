"""The audit log loses nothing: through a NATS server restart, and through a responder SIGKILLed with records in its spool."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import anyio
import pytest

from bus import Bus, BusError, EmbeddedServer, JetStream, connect, stream_name
from schemas import bus as h
from schemas.config import NatsSettings

from .audit_helpers import (
    SERVICE,
    call_body,
    read_records,
    start_audited,
    start_running_call,
    wait_count,
    write_config,
)
from .conftest import Responders

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _spool_files(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.spool"))


def _spooled_lines(spool: Path) -> int:
    """Records waiting in spool files (lines after each file's replay offset)."""
    total = 0
    for f in _spool_files(spool):
        data = f.read_bytes()
        if len(data) < 32:
            continue
        offset = int(data[11:31])
        total += data[offset:].count(b"\n")
    return total


async def test_every_call_that_returned_has_exactly_one_record_after_a_server_restart(tmp_path: Path) -> None:
    """Calls keep coming while the NATS server stops and restarts on the same port and store; afterwards every call
    that returned, and every call that was running when the server went away, has exactly one audit record."""
    store = tmp_path / "server"
    name = f"outage-{uuid.uuid4().hex[:6]}"
    server = EmbeddedServer(store, server_name=name).start()
    port = server.port
    root = "o" + uuid.uuid4().hex[:10]
    responders = Responders(server.url, root)
    settings = NatsSettings(url=server.url, root=root, reconnect_wait=0.1, connect_timeout=2.0)
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", ack_timeout=1.0, retry_interval=0.2)
    spool = tmp_path / "state" / "audit-spool"
    returned: list[str] = []
    attempted: list[str] = []
    running: list[str] = []
    try:
        start_audited(responders, cfg)
        start_audited(responders, cfg)
        await responders.wait_instances(SERVICE, 2)
        async with connect(settings, name="outage test", ident="o" + uuid.uuid4().hex[:8]) as bus:
            stop = asyncio.Event()

            async def worker(w: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    call_id = f"w{w}-{n}"
                    attempted.append(call_id)
                    try:
                        await bus.request(
                            f"{root}.{SERVICE}.tools.call.echo",
                            call_body("echo", {"text": call_id}),
                            {h.CALL_ID: call_id},
                            timeout=1.0,
                        )
                    except BusError:
                        await asyncio.sleep(0.02)  # the server is away: do not spin
                        continue
                    returned.append(call_id)

            async def until(count: int, timeout: float) -> None:
                end = time.monotonic() + timeout
                while len(returned) < count:
                    assert time.monotonic() < end, f"only {len(returned)} calls returned within {timeout} s"
                    await asyncio.sleep(0.02)

            with anyio.fail_after(60):
                workers = [asyncio.create_task(worker(w)) for w in range(8)]
                await until(300, 15)
                # calls that are running while the server goes away finish with nobody to tell: their records
                # are made while disconnected and must reach the stream through the spool
                for i in range(4):
                    call_id = f"inflight-{i}"
                    call = await start_running_call(
                        bus,
                        f"{root}.{SERVICE}.tools.call.wait",
                        call_body("wait", {"seconds": 1.5}, progress=True),
                        {h.CALL_ID: call_id},
                    )
                    call.close()
                    running.append(call_id)
                server.stop()
                before = len(returned)
                end = time.monotonic() + 10
                while _spooled_lines(spool) < len(running):  # the server stays down until they are on disk
                    assert time.monotonic() < end, (
                        f"records made during the outage never reached the spool: {[f.read_bytes()[32:] for f in _spool_files(spool)]}"
                    )
                    await asyncio.sleep(0.05)
                server = EmbeddedServer(store, port=port, server_name=name).start()
                await until(before + 300, 30)
                stop.set()
                await asyncio.gather(*workers)
                wanted = set(returned) | set(running)
                end = time.monotonic() + 30
                while True:
                    records = await read_records(bus, root)
                    if wanted <= {r.callId for r in records} or time.monotonic() > end:
                        break
                    await asyncio.sleep(0.2)
        per_id = Counter(r.callId for r in records)
        missing = wanted - set(per_id)
        assert not missing, f"{len(missing)} calls have no record, e.g. {sorted(missing)[:5]}"
        dupes = {k: v for k, v in per_id.items() if v > 1}
        assert not dupes, f"duplicated records: {dupes}"
        assert set(per_id) <= set(attempted) | set(running)
        assert _spooled_lines(spool) == 0, "every spooled record was replayed"
    finally:
        responders.stop_all()
        server.stop()


async def test_records_spooled_by_a_killed_responder_arrive_after_it_restarts(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """A responder whose records JetStream refuses (stream full) spools them; SIGKILLed and started again with a
    larger stream, it takes over its old spool and every record arrives exactly once."""
    state = tmp_path / "state"
    full = write_config(
        tmp_path / "full.toml", state, discard="new", max_bytes=700, ack_timeout=1.0, retry_interval=0.2
    )
    proc = start_audited(responders, full)
    await responders.wait_instances(SERVICE, 1)
    ids = [f"crash-{i}" for i in range(20)]
    with anyio.fail_after(40):
        for call_id in ids:
            await bus.request(
                f"{root}.{SERVICE}.tools.call.echo",
                call_body("echo", {"text": call_id}),
                {h.CALL_ID: call_id},
                timeout=5,
            )
        stored = await wait_count(bus, root, 1, timeout=10)
        spool = state / "audit-spool"
        end = time.monotonic() + 15
        while stored + _spooled_lines(spool) < len(ids):
            assert time.monotonic() < end, "the refused records never reached the spool"
            await asyncio.sleep(0.05)
            stored = await wait_count(bus, root, 0, timeout=0)
        assert stored < len(ids), "the stream should have been too small for every record"
        orphan = _spool_files(spool)
        assert len(orphan) == 1 and _spooled_lines(spool) == len(ids) - stored
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert orphan[0].exists(), "SIGKILL leaves the spool file behind"

        roomy = write_config(
            tmp_path / "roomy.toml",
            state,
            discard="new",
            max_bytes=1_000_000,
            ack_timeout=1.0,
            retry_interval=0.2,
        )
        start_audited(responders, roomy)
        await responders.wait_instances(SERVICE, 1)
        assert await wait_count(bus, root, len(ids), timeout=15) == len(ids)
    records = await read_records(bus, root)
    assert sorted(r.callId for r in records) == sorted(ids)
    assert not orphan[0].exists(), "the new instance took over the dead instance's spool"
    info = await JetStream(bus).stream_state(stream_name("audit", root))
    assert info.messages == len(ids)


async def test_a_drained_responder_replays_its_spool_before_it_exits(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """Records waiting in the spool (stream full, retries far apart) are published when the responder is drained, before it exits."""
    state = tmp_path / "state"
    cfg = write_config(
        tmp_path / "c.toml", state, discard="new", max_bytes=700, ack_timeout=1.0, retry_interval=3600.0
    )
    proc = start_audited(responders, cfg)
    await responders.wait_instances(SERVICE, 1)
    ids = [f"drain-{i}" for i in range(10)]
    spool = state / "audit-spool"
    with anyio.fail_after(40):
        for call_id in ids:
            await bus.request(
                f"{root}.{SERVICE}.tools.call.echo",
                call_body("echo", {"text": call_id}),
                {h.CALL_ID: call_id},
                timeout=5,
            )
        end = time.monotonic() + 15
        while (stored := await wait_count(bus, root, 0, timeout=0)) + _spooled_lines(spool) < len(ids):
            assert time.monotonic() < end, "the refused records never reached the spool"
            await asyncio.sleep(0.05)
        assert stored < len(ids)
        raw = bus.nc.jetstream()
        info = await raw.stream_info(stream_name("audit", root))
        info.config.max_bytes = 1_000_000  # room again; the responder will not retry for an hour by itself
        await raw.update_stream(info.config)
        proc.terminate()
        assert await anyio.to_thread.run_sync(proc.wait, 20) == 0
    records = await read_records(bus, root)
    assert sorted(r.callId for r in records) == sorted(ids)
    assert _spool_files(spool) == [], "an emptied spool is removed at exit"

"""A three-node NATS cluster on loopback: the bridge survives the loss of its node under load,
and no audit record is lost when that node also leads the (R3) audit stream.

Three nats-server processes (JetStream on, routes between them on ports picked here), the
bridge given all three URLs, fs responders on the two nodes the bridge is not connected to.
Killing the bridge's node (SIGKILL) under load must move the bridge to a surviving node, and
read-only calls, including those in flight at the kill, must all succeed. With the audit
stream's leader moved to that node first, every call must still leave exactly one record in the
stream (unacknowledged records go through the responders' spools; the stream drops replays by
Nats-Msg-Id = call id).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import pytest
from mcp import types

from bus import Bus, BusError, EmbeddedServer, JetStream, connect, stream_name
from schemas.audit import AuditRecord, record_decoder
from schemas.config import NatsSettings

from .audit_helpers import stream_count
from .conftest import MCP_NATS, Responders, child_env
from .e2e_helpers import bridge_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAST_FAILOVER = {"MCP_NATS_BRIDGE_HEARTBEAT": "0.2", "MCP_NATS_BRIDGE_LIVENESS_WINDOW": "1.0"}
BRIDGE_NAME = "mcp-nats bridge"


def free_port() -> int:
    """A loopback port nobody listens on right now (routes need known ports, so `-1` cannot be used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _monitor(server: EmbeddedServer, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}", timeout=2) as r:
        data: dict[str, object] = json.loads(r.read())
        return data


async def monitor(server: EmbeddedServer, path: str) -> dict[str, object]:
    """One JSON document from a node's monitoring port (blocking HTTP, so off the event loop)."""
    return await anyio.to_thread.run_sync(_monitor, server, path)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[EmbeddedServer]]:
    """Three clustered nodes with JetStream; every one of them is stopped after the test."""
    name = "c" + uuid.uuid4().hex[:10]  # a cluster name of our own: never join another test's routes
    route_ports = [free_port() for _ in range(3)]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
    nodes = [
        EmbeddedServer(
            tmp_path / f"n{i}",
            port=free_port(),
            http_port=-1,
            server_name=f"{name}-n{i}",
            extra_config=f"cluster {{\n  name: {name}\n  listen: 127.0.0.1:{route_ports[i]}\n  routes: [{routes}]\n}}",
        )
        for i in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def wait_routes(nodes: list[EmbeddedServer], timeout: float = 20.0) -> None:
    """Bounded wait until every node has routes to both others."""
    with anyio.fail_after(timeout):
        while True:
            names = []
            for n in nodes:
                routez = await monitor(n, "/routez")
                routes: list[dict[str, object]] = routez.get("routes") or []  # type: ignore[assignment]
                names.append({str(r.get("remote_name", r.get("remote_id"))) for r in routes})
            if all(len(s) >= 2 for s in names):
                return
            await anyio.sleep(0.1)


async def bridge_node(nodes: list[EmbeddedServer], timeout: float = 15.0) -> int:
    """Index of the (running) node the bridge is connected to, read from each node's /connz."""
    with anyio.fail_after(timeout):
        while True:
            for i, n in enumerate(nodes):
                if not n.running:
                    continue
                connz = await monitor(n, "/connz?limit=1024")
                conns: list[dict[str, object]] = connz.get("connections") or []  # type: ignore[assignment]
                if any(str(c.get("name", "")).startswith(BRIDGE_NAME) for c in conns):
                    return i
            await anyio.sleep(0.1)


async def test_bridge_moves_to_a_surviving_node_when_its_node_is_killed(
    cluster: list[EmbeddedServer], tmp_path: Path, root: str
) -> None:
    """SIGKILL of the bridge's node under load: the bridge reconnects to another node and every read-only call succeeds."""
    await wait_routes(cluster)
    files = tmp_path / "files"
    files.mkdir()
    for i in range(20):
        (files / f"{i}.txt").write_text(f"file {i}")
    urls = ",".join(n.url for n in cluster)
    argv = ["bridge", "--url", urls, "--subject-root", root]
    responders: list[Responders] = []
    failures: list[str] = []
    done = 0
    after_kill = 0
    killed: int | None = None
    listed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            listed.set()

    try:
        with anyio.fail_after(120):
            async with bridge_client(
                argv, mode="legacy", env=FAST_FAILOVER, message_handler=on_message
            ) as client:
                # nats-py shuffles the URL list, so the bridge may be on any node: that node is "A".
                a = await bridge_node(cluster)
                for i in range(3):
                    if i != a:
                        r = Responders(cluster[i].url, root)
                        r.start(
                            "fs",
                            "--root",
                            str(files),
                            env={"MCP_NATS_AUDIT_SPOOL_DIR": str(tmp_path / "spool")},
                        )
                        responders.append(r)
                for r in responders:
                    await r.wait_instances("fs", 2)
                # Discovery sees fs: through notifications/tools/list_changed, or already in its first sweep when
                # that sweep ran late (a first catalog is not a change); either way tools/list shows it.
                while "fs_read_text_file" not in {t.name for t in (await client.list_tools()).tools}:  # noqa: ASYNC110
                    with anyio.move_on_after(0.5):
                        await listed.wait()

                async def worker(w: int) -> None:
                    nonlocal done, after_kill, killed
                    for k in range(60):
                        i = (w * 60 + k) % 20
                        r = await client.call_tool("fs_read_text_file", {"path": str(files / f"{i}.txt")})
                        text = getattr(r.content[0], "text", None) if r.content else None
                        if r.is_error or text != f"file {i}":
                            failures.append(f"call {w}/{k}: {r.content}")
                        done += 1
                        if killed is not None:
                            after_kill += 1
                        if done == 120 and killed is None:
                            killed = a
                            cluster[a].kill()

                t_load = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for w in range(8):
                        tg.start_soon(worker, w)
                t_load = time.perf_counter() - t_load
                moved_to = await bridge_node(cluster)
                last = await client.call_tool("fs_read_text_file", {"path": str(files / "0.txt")})
    finally:
        for r in responders:
            r.stop_all()
    print(  # noqa: T201 - the run's story, shown with -s
        f"\ncluster: bridge on node {a}, SIGKILLed after 120 calls; moved to node {moved_to}; "  # noqa: T201 - the run's story, shown with -s
        f"{after_kill} calls completed after the kill, {len(failures)} failed; the 480 calls took {t_load:.1f} s"
    )
    assert killed == a
    assert moved_to != a and cluster[moved_to].running
    assert done == 480 and after_kill >= 300
    assert failures == []
    assert not last.is_error


# -- audit: the killed node leads the R3 audit stream ---------------------------------------------


async def wait_meta_leader(nodes: list[EmbeddedServer], timeout: float = 30.0) -> str:
    """Bounded wait until every node names the same JetStream meta leader (before that, stream creation times out)."""
    with anyio.fail_after(timeout):
        while True:
            leaders = set()
            for n in nodes:
                jsz = await monitor(n, "/jsz")
                meta = jsz.get("meta_cluster") or {}
                leaders.add(str(meta.get("leader") or "") if isinstance(meta, dict) else "")
            if len(leaders) == 1 and "" not in leaders:
                return leaders.pop()
            await anyio.sleep(0.1)


async def js_api(bus: Bus, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JetStream API request; raises AssertionError when JetStream answers with an error."""
    reply = await bus.request(subject, json.dumps(body or {}).encode(), timeout=5)
    data: dict[str, Any] = json.loads(reply.data)
    if data.get("error"):
        raise AssertionError(f"{subject}: {data['error']}")
    return data


async def stream_cluster(bus: Bus, stream: str) -> dict[str, Any]:
    """The `cluster` part of the stream's info: leader, replicas (name, current)."""
    info = await js_api(bus, f"$JS.API.STREAM.INFO.{stream}")
    assert info["config"]["num_replicas"] == 3, (
        f"the audit stream must follow the cluster (R3), it has R{info['config']['num_replicas']}"
    )
    cluster: dict[str, Any] = info.get("cluster") or {}
    return cluster


async def wait_stream_ready(bus: Bus, stream: str, timeout: float = 30.0, current: int = 2) -> dict[str, Any]:
    """Bounded wait until the stream exists, has a leader, and `current` other replicas are current."""
    with anyio.fail_after(timeout):
        while True:
            try:
                cluster = await stream_cluster(bus, stream)
            except BusError:
                pass  # no answer: JetStream is electing a leader (of the stream, or the meta leader)
            except AssertionError as exc:
                if "stream not found" not in str(exc):
                    raise
            else:
                replicas = cluster.get("replicas") or []
                if cluster.get("leader") and sum(1 for r in replicas if r.get("current")) >= current:
                    return cluster
            await anyio.sleep(0.1)


async def move_stream_leader(bus: Bus, stream: str, target: str, timeout: float = 30.0) -> None:
    """Make `target` (a server name) the stream's leader: step-down requests naming it as the preferred
    peer (nats-server 2.11+), repeated until the stream's info names it (bounded)."""
    with anyio.fail_after(timeout):
        while True:
            cluster = await wait_stream_ready(bus, stream, timeout)
            if cluster["leader"] == target:
                return
            try:
                await js_api(
                    bus, f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", {"placement": {"preferred": target}}
                )
            except (AssertionError, BusError):
                pass  # e.g. a step-down already in progress, or no answer during the election: look again
            await anyio.sleep(0.5)


def start_fs(r: Responders, files: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`mcp-nats serve fs` as Responders.start does, with stderr (its warnings) kept in `log`."""
    argv = [
        MCP_NATS,
        "serve",
        "fs",
        "--url",
        r.url,
        "--subject-root",
        r.root,
        "--log-level",
        "warning",
        "--root",
        str(files),
    ]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=err, env=child_env(**env))
    r.procs.append(proc)
    return proc


async def wait_records(bus: Bus, root: str, count: int, timeout: float) -> None:
    """Bounded wait until the audit stream holds at least `count` records (on timeout the assertions say what is missing)."""
    with anyio.move_on_after(timeout):
        while True:
            try:
                if await stream_count(bus, root) >= count:
                    return
            except BusError:
                pass  # no answer while the stream elects a new leader
            await anyio.sleep(0.2)


class Stored:
    """One audit record as the stream holds it."""

    def __init__(self, record: AuditRecord, msg_id: str, stored: str) -> None:
        self.record = record
        self.msg_id = msg_id
        self.lag = _ts(stored) - _ts(record.time)
        """Seconds from the end of the call to its record's storage (over ~1 s: it went through a spool)."""


def _ts(text: str) -> float:
    """An RFC 3339 time (the server's has nanoseconds, which fromisoformat does not take) as a POSIX timestamp."""
    return dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")).timestamp()


async def read_stored(bus: Bus, root: str) -> list[Stored]:
    """Every record in the root's audit stream, in stream order, with its Nats-Msg-Id and storage time."""
    js = JetStream(bus)
    out: list[Stored] = []
    seq = 1
    while True:
        batch = await js.get_batch(stream_name("audit", root), f"{root}.audit.>", seq=seq, batch=1000)
        out.extend(
            Stored(record_decoder.decode(m.data), m.headers.get("Nats-Msg-Id", ""), m.time)
            for m in batch.messages
        )
        if not batch.messages or batch.pending == 0:
            return out
        seq = batch.messages[-1].seq + 1


async def read_all(bus: Bus, root: str, expected: int, timeout: float = 15.0) -> tuple[int, list[Stored]]:
    """The stream's message count and every record in it. Direct gets may be answered by a replica that
    is still catching up, so read again (bounded) until the records read match the count."""
    end = time.monotonic() + timeout
    while True:
        try:
            count = await stream_count(bus, root)
            records = await read_stored(bus, root)
        except BusError:
            if time.monotonic() > end:
                raise
        else:
            if (len(records) == count and count >= expected) or time.monotonic() > end:
                return count, records
        await anyio.sleep(0.2)


async def test_no_audit_record_is_lost_when_the_audit_stream_leader_is_killed(
    cluster: list[EmbeddedServer], tmp_path: Path, root: str
) -> None:
    """The R3 audit stream is led by the bridge's node, which is SIGKILLed under load: every call that returned a
    result has exactly one record with its call id, read back from a surviving node, and the count matches."""
    calls = 400
    workers = 8
    kill_after = 100
    await wait_routes(cluster)
    await wait_meta_leader(
        cluster
    )  # responders create the audit stream at start: JetStream must answer by then
    files = tmp_path / "files"
    files.mkdir()
    for i in range(calls):
        (files / f"{i}.txt").write_text(f"file {i}")
    spool = tmp_path / "spool"
    client_name = "cluster-audit-" + uuid.uuid4().hex[:6]
    # redacted: each record carries the call's arguments, so the path (unique per call) names the call the record is for
    responder_env = {"MCP_NATS_AUDIT_ARGUMENTS": "redacted", "MCP_NATS_AUDIT_SPOOL_DIR": str(spool)}
    argv = ["bridge", "--url", ",".join(n.url for n in cluster), "--subject-root", root]
    bridge_env = {**FAST_FAILOVER, "MCP_NATS_BRIDGE_CLIENT_NAME": client_name}
    responders: list[Responders] = []
    logs: list[Path] = []
    failures: list[str] = []
    succeeded: set[int] = set()
    done = 0
    killed: int | None = None
    leader_at_kill = ""
    listed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            listed.set()

    def log_text() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())

    try:
        with anyio.fail_after(240):
            async with bridge_client(
                argv, mode="legacy", env=bridge_env, message_handler=on_message
            ) as client:
                a = await bridge_node(cluster)  # node "A": the bridge's, soon the stream leader's too
                b = next(i for i in range(3) if i != a)
                for i in range(3):
                    if i != a:
                        r = Responders(cluster[i].url, root)
                        logs.append(tmp_path / f"fs-n{i}.log")
                        start_fs(r, files, logs[-1], responder_env)
                        responders.append(r)
                for r in responders:
                    await r.wait_instances("fs", 2)
                await listed.wait()
                async with connect(
                    NatsSettings(url=cluster[b].url, root=root, connect_timeout=2.0),
                    name="test",
                    ident="t" + uuid.uuid4().hex[:8],
                ) as bus:
                    stream = stream_name("audit", root)  # what audit_stream(root, AuditSettings()) names it
                    await wait_stream_ready(
                        bus, stream
                    )  # created by the responders (R3: the server INFO names a cluster)
                    await move_stream_leader(bus, stream, cluster[a].server_name)

                    async def worker(w: int) -> None:
                        nonlocal done, killed, leader_at_kill
                        for i in range(w, calls, workers):
                            r = await client.call_tool("fs_read_text_file", {"path": str(files / f"{i}.txt")})
                            text = getattr(r.content[0], "text", None) if r.content else None
                            if r.is_error or text != f"file {i}":
                                failures.append(f"call {i}: {r.content}")
                            else:
                                succeeded.add(i)
                            done += 1
                            if done == kill_after and killed is None:
                                killed = a
                                leader_at_kill = (await stream_cluster(bus, stream))["leader"]
                                cluster[a].kill()

                    t_load = time.perf_counter()
                    async with anyio.create_task_group() as tg:
                        for w in range(workers):
                            tg.start_soon(worker, w)
                    t_load = time.perf_counter() - t_load
                    t_audit = time.perf_counter()
                    await wait_records(
                        bus, root, len(succeeded), timeout=90
                    )  # spooled records arrive as the spools replay
                    t_audit = time.perf_counter() - t_audit
                    for r in responders:
                        await anyio.to_thread.run_sync(
                            r.stop_all
                        )  # SIGTERM: drain, flush the audit log and the spool
                    codes = [p.returncode for r in responders for p in r.procs]
                    new_leader = (await wait_stream_ready(bus, stream, current=1))[
                        "leader"
                    ]  # A is gone: leader + 1
                    count, stored = await read_all(bus, root, len(succeeded))
    finally:
        for r in responders:
            r.stop_all()
    records = [st.record for st in stored]
    spooling = log_text().count("did not take a record")
    late = sum(1 for st in stored if st.lag > 1.0)
    left = {p.name: p.stat().st_size for p in spool.rglob("*.spool")} if spool.exists() else {}
    print(  # noqa: T201 - the run's story, shown with -s
        f"\ncluster audit: bridge and stream leader on node {a} ({leader_at_kill}), SIGKILLed after {kill_after} calls; "  # noqa: T201 - the run's story, shown with -s
        f"new leader {new_leader}; {len(succeeded)}/{calls} calls ok in {t_load:.1f} s; {count} records in the stream "
        f"{t_audit:.1f} s later, {late} of them stored over 1 s after their call ended (spool replays); "
        f"{spooling} spooling episodes in the responder logs; spool files left: {left or 'none'}"
    )
    assert killed == a and leader_at_kill == cluster[a].server_name, (
        "the killed node must lead the audit stream"
    )
    assert new_leader != cluster[a].server_name
    assert failures == [], failures[:5]
    assert len(succeeded) == calls
    assert codes == [0, 0], f"responders must exit cleanly after SIGTERM, got {codes}\n{log_text()}"
    by_call = Counter(r.callId for r in records)
    per_path: Counter[int] = Counter()
    for rec in records:
        args = json.loads(bytes(rec.arguments)) if not isinstance(rec.arguments, msgspec.UnsetType) else {}
        per_path[int(Path(args.get("path", "-1.txt")).stem)] += 1
    lost = sorted(i for i in succeeded if per_path[i] == 0)
    doubled = sorted(i for i in succeeded if per_path[i] > 1)
    assert not lost, (
        f"{len(lost)} calls have no audit record, e.g. {lost[:10]}; spool files left: {left}\n{log_text()}"
    )
    assert not doubled, f"{len(doubled)} calls have more than one record, e.g. {doubled[:10]}"
    assert all(n == 1 for n in by_call.values()), (
        f"call ids with more than one record: {[c for c, n in by_call.items() if n > 1][:10]}"
    )
    assert all(st.msg_id == st.record.callId for st in stored), (
        "every record is stored under Nats-Msg-Id = its call id"
    )
    assert set(per_path) == succeeded, (
        f"records for calls never made: {sorted(set(per_path) - succeeded)[:10]}"
    )
    assert count == len(records) == calls, f"stream count {count}, records read {len(records)}, calls {calls}"
    assert all(
        r.service == "fs" and r.tool == "read_text_file" and r.outcome == "ok" and r.identity == client_name
        for r in records
    )
    prefixes = {r.callId.rsplit("-", 1)[0] for r in records}
    assert len(prefixes) == 1, f"one bridge made every call, so one call id prefix: {prefixes}"
    assert not left, f"records stranded in spool files: {left}"

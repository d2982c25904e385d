"""`python -m bench postgres`: a one-row primary-key `query` through the bridge (-> NATS -> `mcp-nats
serve postgres`) versus the same query through the reference `@modelcontextprotocol/server-postgres`
(npm, run with node directly over stdio), in the same run: calls/s at 64 in flight and sequential
p50, repetitions interleaved. Goal (issue #12): at least 2x the reference's throughput.

A third target, the floor, is the same bridge calling a tool that does no work (bench/echo_service.py):
what this path can do at all on this machine. Every process's CPU per call is reported, the
PostgreSQL backends serving the database included, with the CPU budget the goal leaves.

Owns a database of its own on the given server (created, seeded with 10 000 rows, dropped at the
end), a nats-server, the responder and both stdio servers. Every response is checked: not an error,
and the row's own marker in the raw line, so a wrong or empty answer never looks fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import uvloop

from bus import EmbeddedServer
from bus.embedded import die_with_parent

from .nats_load import wait_instances
from .procs import Meter, pids_matching
from .rig import MCP_NATS, child_env, default_cache, npm_install
from .stdio_load import Phase, StdioServer, Workload

PG_PACKAGE: Final = "@modelcontextprotocol/server-postgres"
PG_VERSION: Final = "0.6.2"
ROWS: Final = 10_000
IDS: Final = 1024


def _with_db(url: str, db: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{db}", p.query, ""))


async def _create(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(_with_db(admin, name), timeout=10)
    try:
        await conn.execute(
            "CREATE TABLE bench_rows (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), created timestamptz);"
            f"INSERT INTO bench_rows SELECT i, 'row-' || i || '-marker', i * 1.25, '2026-01-01'::timestamptz + i * interval '1 minute' "
            f"FROM generate_series(1, {ROWS}) AS i; ANALYZE bench_rows;"
        )
    finally:
        await conn.close()


async def _drop(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        await conn.close()


def workload(tool: str) -> Workload:
    """The query for `query` tools; for the floor's `bench_echo`, the marker itself, echoed."""
    ids = [(i * 7919) % ROWS + 1 for i in range(IDS)]
    if tool == "bench_echo":
        args = [json.dumps({"text": f"row-{i}-marker"}).encode() for i in ids]
    else:
        args = [
            json.dumps({"sql": f"SELECT id, name, price, created FROM bench_rows WHERE id = {i}"}).encode()
            for i in ids
        ]
    return Workload("tools/call", tool, args, [f"row-{i}-marker".encode() for i in ids])


def _backends(db: str) -> dict[str, Callable[[], list[int]]]:
    """The Meter group of the PostgreSQL backends serving `db` (their process title names it), whoever's they are."""
    return {"postgres": lambda: pids_matching(f" {db} ".encode())}


def _phase(
    s: StdioServer,
    work: Workload,
    k: int,
    warm: int,
    count: int,
    seconds: float,
    pids: dict[str, int],
    db: str,
) -> tuple[Phase, Meter]:
    s.run(work, k=k, count=warm)
    meter = Meter(pids, groups=_backends(db)).start()
    phase = s.run(work, k=k, count=count, max_seconds=seconds)
    meter.stop()
    return phase, meter


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench postgres", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pg-url",
        default=os.environ.get("MCP_NATS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL (creates and drops its own database; default: $MCP_NATS_TEST_PG_URL or the local server)",
    )
    p.add_argument("--quick", action="store_true", help="one short repetition")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cache", type=Path, default=default_cache())
    p.add_argument(
        "--tool-only",
        action="store_true",
        help="only the service's query path, in this process (no bus, no reference): calls/s and CPU per call "
        "of the tool and of PostgreSQL at 64 in flight",
    )
    a = p.parse_args(argv)
    if a.tool_only:
        return _tool_only(a.pg_url, 1 if a.quick else a.reps, 5000 if a.quick else 20000)
    reps, seq_n, pipe_n, secs = (1, 500, 5000, 5.0) if a.quick else (a.reps, 2000, 20000, 10.0)
    try:
        entry = npm_install(a.cache, PG_VERSION, PG_PACKAGE)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        sys.stderr.write(f"bench postgres: cannot set up the reference server: {exc}\n")
        return 2
    node = shutil.which("node")
    if node is None:
        sys.stderr.write("bench postgres: node is not installed\n")
        return 2
    dbname = "mcpnats_bench_" + uuid.uuid4().hex[:8]
    try:
        asyncio.run(_create(a.pg_url, dbname))
    except (OSError, asyncpg.PostgresError) as exc:
        sys.stderr.write(f"bench postgres: cannot create the database on {a.pg_url.split('@')[-1]}: {exc}\n")
        return 2
    url = _with_db(a.pg_url, dbname)
    tmp = Path(tempfile.mkdtemp(prefix="mcp-nats-bench-pg-"))
    server = EmbeddedServer(tmp / "nats", http_port=-1).start()
    root = "benchpg" + uuid.uuid4().hex[:6]
    responder: subprocess.Popen[bytes] | None = None
    echo: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, object]] = []
    try:
        with open(tmp / "responder.log", "ab") as log:
            responder = subprocess.Popen(
                [
                    MCP_NATS,
                    "serve",
                    "postgres",
                    "--url",
                    url,
                    "--nats-url",
                    server.url,
                    "--subject-root",
                    root,
                    "--log-level",
                    "error",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**child_env(), "MCP_NATS_STATE_DIR": str(tmp / "state")},
                preexec_fn=die_with_parent,
            )
            # the floor: the same path to a responder whose tool does no work (bench/echo_service.py)
            echo = subprocess.Popen(
                [sys.executable, "-m", "bench.echo_service", server.url, root],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**child_env(), "MCP_NATS_STATE_DIR": str(tmp / "state-echo")},
                preexec_fn=die_with_parent,
            )
        uvloop.run(wait_instances(server.url, root, "postgres", 1))
        uvloop.run(wait_instances(server.url, root, "bench", 1))
        assert server.process is not None
        bridge = [MCP_NATS, "bridge", "--url", server.url, "--subject-root", root]
        nats_pid = server.process.pid
        targets = [
            (
                "bridge",
                bridge,
                "postgres_query",
                {"bridge": 0, "responder": responder.pid, "nats-server": nats_pid},
            ),
            ("reference", [node, str(entry), url], "query", {"server": 0}),
            ("floor", bridge, "bench_echo", {"bridge": 0, "responder": echo.pid, "nats-server": nats_pid}),
        ]
        for rep in range(1, reps + 1):
            for name, cmd, tool, helpers in targets:
                with StdioServer(cmd, env=child_env(), stderr=tmp / f"{name}.err") as s:
                    s.handshake(tool)
                    pids = {k: (s.pid if v == 0 else v) for k, v in helpers.items()}
                    work = workload(tool)
                    for mode, k, warm, count in (("seq", 0, 300, seq_n), ("K=64", 64, 1000, pipe_n)):
                        phase, meter = _phase(s, work, k, warm, count, secs, pids, dbname)
                        n = max(1, phase.ok)
                        row = {
                            "target": name,
                            "mode": mode,
                            "rep": rep,
                            "ok": phase.ok,
                            "failures": dict(phase.failures),
                            "ops": round(phase.ops, 1),
                            "p50_us": round(phase.pct(0.5)),
                            "p99_us": round(phase.pct(0.99)),
                            "cpu_us_per_call": {p: round(c / n * 1e6, 1) for p, c in meter.cpu.items()},
                            "noise": meter.noise(),
                        }
                        rows.append(row)
                        bad = f" FAILURES {row['failures']}" if phase.failures else ""
                        sys.stderr.write(
                            f"[bench pg] rep {rep} {name:9} {mode:5} {phase.ops:8.0f}/s p50 {phase.pct(0.5):7.0f} µs "
                            f"p99 {phase.pct(0.99):7.0f} µs{bad}\n"
                        )
    finally:
        for proc in (responder, echo):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        server.stop()
        asyncio.run(_drop(a.pg_url, dbname))
        shutil.rmtree(tmp, ignore_errors=True)
    return _report(rows, a)


def _tool_only(admin: str, reps: int, count: int) -> int:
    """The postgres service's `query` tool called in this process (its lifespan, pool and result rendering,
    no bus), 64 in flight: where the database path's cost goes, apart from the bridge and NATS."""
    from responders.plugin import ServiceRuntime
    from responders.service import to_result
    from responders.services.postgres import PostgresSettings, build

    dbname = "mcpnats_bench_" + uuid.uuid4().hex[:8]
    asyncio.run(_create(admin, dbname))
    encoder = msgspec.json.Encoder()

    async def run() -> None:
        svc = build(PostgresSettings(url=_with_db(admin, dbname)))
        spec = svc.tools["query"]
        work = workload("query")
        sqls = [json.loads(raw)["sql"] for raw in work.args]
        runtime = ServiceRuntime(bus=None, subjects=None, events=None, instance="bench", service=svc.name)  # type: ignore[arg-type]
        assert svc.lifespan_fn is not None
        async with svc.lifespan_fn(runtime):
            gate = asyncio.Semaphore(64)

            async def one(i: int) -> None:
                async with gate:
                    body = encoder.encode(to_result(await spec.invoke({"sql": sqls[i % len(sqls)]}), spec))
                    if work.markers[i % len(sqls)] not in body:
                        raise RuntimeError(f"wrong answer: {body[:200]!r}")

            await asyncio.gather(*(one(i) for i in range(1000)))
            for rep in range(1, reps + 1):
                meter = Meter({}, groups=_backends(dbname)).start()
                t0 = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(count)))
                elapsed = time.perf_counter() - t0
                meter.stop()
                tool, pg = (meter.cpu[k] / count * 1e6 for k in ("loadgen", "postgres"))
                sys.stdout.write(
                    f"rep {rep}: {count / elapsed:7.0f} calls/s, CPU per call: tool {tool:.0f} µs + PostgreSQL {pg:.0f} µs\n"
                )

    try:
        uvloop.run(run())
    finally:
        asyncio.run(_drop(admin, dbname))
    return 0


def _cpu(rows: list[dict[str, object]]) -> dict[str, float]:
    """CPU µs per call of each process (the load generator left out), medians over the repetitions `rows`."""
    names = [k for k in rows[0]["cpu_us_per_call"] if k != "loadgen"]  # type: ignore[attr-defined]
    return {k: statistics.median(r["cpu_us_per_call"][k] for r in rows) for k in names}  # type: ignore[index]


def _report(rows: list[dict[str, object]], a: argparse.Namespace) -> int:
    def med(target: str, mode: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in rows if r["target"] == target and r["mode"] == mode)  # type: ignore[arg-type]

    out = [
        "",
        f"one-row primary-key query, {PG_PACKAGE} {PG_VERSION} vs mcp-nats bridge (median of repetitions)",
        f"{'target':10} {'K=64 calls/s':>13} {'seq p50 µs':>11} {'seq calls/s':>12}  CPU µs per call at K=64 (machine busy %)",
    ]
    cpu: dict[str, dict[str, float]] = {}
    for t in ("bridge", "reference", "floor"):
        k64 = [r for r in rows if r["target"] == t and r["mode"] == "K=64"]
        cpu[t] = _cpu(k64)
        busy = statistics.median(r["noise"]["busy_pct"] for r in k64)  # type: ignore[index]
        split = " + ".join(f"{v:.0f} {k}" for k, v in cpu[t].items())
        out.append(
            f"{t:10} {med(t, 'K=64', 'ops'):13.0f} {med(t, 'seq', 'p50_us'):11.0f} {med(t, 'seq', 'ops'):12.0f}"
            f"  {sum(cpu[t].values()):.0f} = {split} ({busy:.0f}%)"
        )
    ref_ops = max(1e-9, med("reference", "K=64", "ops"))
    ratio = med("bridge", "K=64", "ops") / ref_ops
    out.append(f"throughput ratio at K=64: {ratio:.2f}x (goal: >= 2x)")
    floor = med("floor", "K=64", "ops") / ref_ops
    cores = os.cpu_count() or 1
    budget = cores * 1e6 / (2 * ref_ops)
    out.append(
        f"floor (bridge -> NATS -> a tool that does no work, no database): {floor:.2f}x the reference; "
        "a query through this path cannot beat that on this machine"
    )
    out.append(
        f"CPU budget for 2x: {cores} CPUs / (2 x {ref_ops:.0f} calls/s) = {budget:.0f} µs per call at 100% busy, "
        f"PostgreSQL's share included; the floor alone uses {sum(cpu['floor'].values()):.0f} µs, the reference's "
        f"PostgreSQL work {cpu['reference']['postgres']:.0f} µs"
    )
    sys.stdout.write("\n".join(out) + "\n")
    failed = sum(sum(r["failures"].values()) for r in rows)  # type: ignore[attr-defined]
    sys.stdout.write(
        json.dumps({"rows": rows, "ratio_k64": round(ratio, 2), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        + "\n"
    )
    return 1 if failed else 0

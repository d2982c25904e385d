"""`python -m bench postgres`: a one-row primary-key `query` through the bridge (-> NATS -> `mcp-nats
serve postgres`) versus the same query through the reference `@modelcontextprotocol/server-postgres`
(npm, run with node directly over stdio), in the same run: calls/s at 64 in flight and sequential
p50, repetitions interleaved. Goal (issue #12): at least 2x the reference's throughput.

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
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvloop

from bus import EmbeddedServer
from bus.embedded import die_with_parent

from .nats_load import wait_instances
from .procs import Meter
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
    ids = [(i * 7919) % ROWS + 1 for i in range(IDS)]
    args = [
        json.dumps({"sql": f"SELECT id, name, price, created FROM bench_rows WHERE id = {i}"}).encode()
        for i in ids
    ]
    return Workload("tools/call", tool, args, [f"row-{i}-marker".encode() for i in ids])


def _phase(
    s: StdioServer, work: Workload, k: int, warm: int, count: int, seconds: float, pids: dict[str, int]
) -> tuple[Phase, Meter]:
    s.run(work, k=k, count=warm)
    meter = Meter(pids).start()
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
    a = p.parse_args(argv)
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
        uvloop.run(wait_instances(server.url, root, "postgres", 1))
        assert server.process is not None
        targets = [
            (
                "bridge",
                [MCP_NATS, "bridge", "--url", server.url, "--subject-root", root],
                "postgres_query",
                {"bridge": 0, "responder": responder.pid, "nats-server": server.process.pid},
            ),
            ("reference", [node, str(entry), url], "query", {"server": 0}),
        ]
        for rep in range(1, reps + 1):
            for name, cmd, tool, helpers in targets:
                with StdioServer(cmd, env=child_env(), stderr=tmp / f"{name}.err") as s:
                    s.handshake(tool)
                    pids = {k: (s.pid if v == 0 else v) for k, v in helpers.items()}
                    work = workload(tool)
                    for mode, k, warm, count in (("seq", 0, 300, seq_n), ("K=64", 64, 1000, pipe_n)):
                        phase, meter = _phase(s, work, k, warm, count, secs, pids)
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
                        }
                        rows.append(row)
                        bad = f" FAILURES {row['failures']}" if phase.failures else ""
                        sys.stderr.write(
                            f"[bench pg] rep {rep} {name:9} {mode:5} {phase.ops:8.0f}/s p50 {phase.pct(0.5):7.0f} µs "
                            f"p99 {phase.pct(0.99):7.0f} µs{bad}\n"
                        )
    finally:
        if responder is not None:
            responder.terminate()
            try:
                responder.wait(15)
            except subprocess.TimeoutExpired:
                responder.kill()
        server.stop()
        asyncio.run(_drop(a.pg_url, dbname))
        shutil.rmtree(tmp, ignore_errors=True)
    return _report(rows, a)


def _report(rows: list[dict[str, object]], a: argparse.Namespace) -> int:
    def med(target: str, mode: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in rows if r["target"] == target and r["mode"] == mode)  # type: ignore[arg-type]

    out = [
        "",
        f"one-row primary-key query, {PG_PACKAGE} {PG_VERSION} vs mcp-nats bridge (median of repetitions)",
        f"{'target':10} {'K=64 calls/s':>13} {'seq p50 µs':>11} {'seq calls/s':>12}",
    ]
    for t in ("bridge", "reference"):
        out.append(
            f"{t:10} {med(t, 'K=64', 'ops'):13.0f} {med(t, 'seq', 'p50_us'):11.0f} {med(t, 'seq', 'ops'):12.0f}"
        )
    ratio = med("bridge", "K=64", "ops") / max(1e-9, med("reference", "K=64", "ops"))
    out.append(f"throughput ratio at K=64: {ratio:.2f}x (goal: >= 2x)")
    sys.stdout.write("\n".join(out) + "\n")
    failed = sum(sum(r["failures"].values()) for r in rows)  # type: ignore[attr-defined]
    sys.stdout.write(
        json.dumps({"rows": rows, "ratio_k64": round(ratio, 2), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        + "\n"
    )
    return 1 if failed else 0

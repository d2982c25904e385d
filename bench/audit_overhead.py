"""What the audit log costs a responder: calls/s and latency of a trivial tool with audit on and off.

    .venv/bin/python -m bench.audit_overhead [CALLS] [CONCURRENCY] [REPS]

Starts its own nats-server (JetStream on) in a temporary directory and, per repetition, one
responder process with `[audit] enabled = true` and one with it off (interleaved, so machine
drift hits both), then drives CALLS calls of `echo` at CONCURRENCY in flight over one
multiplexed connection. With audit on it also checks that every call left one record.
Prints one line per run (calls/s, latency, and CPU time per call of the responder process and of
nats-server, which is what the audit log adds work to) and the medians. Throughput on a shared
machine is noisy; CPU per call is the steadier measure.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import uvloop

from bus import EmbeddedServer, JetStream, NoResponders, connect, stream_name
from responders import Service, serve
from schemas.config import AuditSettings, NatsSettings, Settings

svc = Service("auditbench", "0.0.1", "A trivial tool for measuring the audit log's cost.")


@svc.tool(read_only=True)
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


def _serve(url: str, root: str, audit: bool, state: str) -> None:
    settings = Settings(
        nats=NatsSettings(url=url, root=root), audit=AuditSettings(enabled=audit), state_dir=state
    )
    uvloop.run(serve(svc, settings))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(
    url: str, root: str, calls: int, concurrency: int, audit: bool, pids: tuple[int, int] = (0, 0)
) -> tuple[float, float, float, float, float]:
    async with connect(
        NatsSettings(url=url, root=root), name="audit bench", ident="b" + uuid.uuid4().hex[:8]
    ) as bus:
        subject = f"{root}.auditbench.tools.call.echo"
        body = msgspec.json.encode({"name": "echo", "arguments": {"text": "x" * 64}})
        end = time.monotonic() + 15
        while True:
            try:
                await bus.request(subject, body, timeout=2)
                break
            except NoResponders:
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.05)
        for _ in range(500):  # warm-up
            await bus.request(subject, body, timeout=5)
        latencies: list[float] = []
        queue = iter(range(calls))

        async def worker() -> None:
            for i in queue:
                t0 = time.perf_counter()
                await bus.request(subject, body, {"Mcp-Call-Id": f"c{i}"}, timeout=10)
                latencies.append(time.perf_counter() - t0)

        cpu0 = [cpu_seconds(p) if p else 0.0 for p in pids]
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        if audit:
            js = JetStream(bus)
            want = calls + 501
            for _ in range(600):  # at most 30 s
                n = (await js.stream_state(stream_name("audit", root))).messages
                if n >= want:
                    break
                await asyncio.sleep(0.05)
            if n != want:
                sys.stderr.write(f"audit: {n} records for {want} calls\n")
        cpu = [(cpu_seconds(p) - c) * 1e6 / calls if p else 0.0 for p, c in zip(pids, cpu0, strict=True)]
        latencies.sort()
        return (
            calls / elapsed,
            latencies[len(latencies) // 2] * 1e6,
            latencies[int(len(latencies) * 0.99)] * 1e6,
            cpu[0],
            cpu[1],
        )


def main(argv: list[str]) -> None:
    if argv and argv[0] == "serve":
        _serve(argv[1], argv[2], argv[3] == "1", argv[4])
        return
    calls = int(argv[0]) if argv else 20000
    concurrency = int(argv[1]) if len(argv) > 1 else 64
    reps = int(argv[2]) if len(argv) > 2 else 3
    results: dict[bool, list[tuple[float, float, float, float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp) / "server").start()
        try:
            for rep in range(reps):
                for audit in (False, True):
                    root = f"ab{rep}{int(audit)}{uuid.uuid4().hex[:6]}"
                    proc = subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "bench.audit_overhead",
                            "serve",
                            server.url,
                            root,
                            "1" if audit else "0",
                            tmp,
                        ]
                    )
                    try:
                        assert server.process is not None
                        r = asyncio.run(
                            _drive(
                                server.url, root, calls, concurrency, audit, (proc.pid, server.process.pid)
                            )
                        )
                    finally:
                        proc.terminate()
                        proc.wait(30)
                    results[audit].append(r)
                    sys.stdout.write(
                        f"rep {rep + 1} audit={'on ' if audit else 'off'} {r[0]:9.0f} calls/s  p50 {r[1]:7.0f} us  p99 {r[2]:7.0f} us"
                        f"  CPU/call: responder {r[3]:5.1f} us, nats-server {r[4]:5.1f} us\n"
                    )
                    sys.stdout.flush()
        finally:
            server.stop()
    off = [r[0] for r in results[False]]
    on = [r[0] for r in results[True]]
    sys.stdout.write(
        f"median calls/s: audit off {statistics.median(off):.0f}, audit on {statistics.median(on):.0f} "
        f"({100 * (1 - statistics.median(on) / statistics.median(off)):.1f}% fewer); "
        f"median p50: off {statistics.median(r[1] for r in results[False]):.0f} us, on {statistics.median(r[1] for r in results[True]):.0f} us\n"
        f"median CPU per call: responder off {statistics.median(r[3] for r in results[False]):.1f} us, "
        f"on {statistics.median(r[3] for r in results[True]):.1f} us; nats-server off "
        f"{statistics.median(r[4] for r in results[False]):.1f} us, on {statistics.median(r[4] for r in results[True]):.1f} us "
        "(the audit stream's CPU is measured after the records are all stored)\n"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

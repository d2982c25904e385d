"""`python -m bench latency`: where the time of one sequential call goes.

py-spy shows where CPU goes under load; a sequential call is mostly waiting, so this measures
time instead. The bridge and one fs responder run with `bench/latency_trace` on PYTHONPATH,
which stamps when bytes arrive and leave each process (see its docstring). With one call in
flight, arrival-to-departure is that process's share; what the client measures beyond the sum
is nats-server's two hops, the kernel and the wake-ups of every process on the path. The
reference filesystem server (node, direct stdio) is measured in the same run for scale.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Final

from .procs import Meter
from .rig import MCP_NATS, Rig, Target, _stop
from .stdio_load import StdioServer

TRACE_DIR: Final = Path(__file__).parent / "latency_trace"


def _p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _env(rig: Rig, out: Path) -> dict[str, str]:
    path = str(TRACE_DIR) + (os.pathsep + str(rig.code) if rig.code else "")
    return {"PYTHONPATH": path, "BENCH_LATENCY_TRACE": str(out)}


def _seq(
    target: Target, rig: Rig, env: dict[str, str], warm: int, count: int
) -> tuple[float, dict[str, float]]:
    """(client-measured p50 µs, CPU µs per call by process) of `count` sequential calls."""
    with StdioServer(
        target.argv, env={**target.env, **env}, cwd=target.cwd, stderr=rig.logs / f"{target.name}-latency.err"
    ) as s:
        s.handshake(target.tool)
        work = rig.read_workload(target)
        s.run(work, k=0, count=warm, mode="seq")
        meter = Meter({"server" if not target.helpers else target.name: s.pid, **target.helpers}).start()
        phase = s.run(work, k=0, count=count, mode="seq")
        meter.stop()
        s.close()
    if phase.failures:
        raise RuntimeError(f"{target.name}: failed calls {dict(phase.failures)}")
    n = max(1, phase.ok)
    return phase.pct(0.5), {p: c / n * 1e6 for p, c in meter.cpu.items()}


def latency(rig: Rig, *, reps: int = 3, warm: int = 500, count: int = 2000) -> int:
    out = rig.tmp / "latency"
    out.mkdir(exist_ok=True)
    root = rig.root + "lt"
    resp_trace = out / "responder.json"
    argv = [
        MCP_NATS,
        "serve",
        "fs",
        "--root",
        str(rig.data),
        "--url",
        rig.url,
        "--subject-root",
        root,
        "--log-level",
        "warning",
    ]
    responder = rig._spawn(
        argv, "fs-latency.log", MCP_NATS_STATE_DIR=str(rig.tmp / "state"), **_env(rig, resp_trace)
    )
    rows: list[dict[str, Any]] = []
    try:
        rig._wait(root, "fs", 1, "fs-latency.log")
        base = rig.bridge()
        bridge = Target(
            base.name,
            base.label,
            [MCP_NATS, "bridge", "--url", rig.url, "--subject-root", root],
            base.tool,
            base.env,
            helpers={"responder": responder.pid, "nats-server": rig.nats_pid},
        )
        node = rig.node_fs()
        bridge_spans: dict[str, list[float]] = {}
        for rep in range(reps):
            trace = out / f"bridge-{rep}.json"
            total, cpu = _seq(bridge, rig, _env(rig, trace), warm, count)
            for k, v in json.loads(trace.read_text()).items():
                bridge_spans.setdefault(k, []).extend(v[-count:])
            node_p50 = _seq(node, rig, {}, warm, count)[0] if node is not None else float("nan")
            rows.append({"rep": rep + 1, "bridge_p50": total, "node_p50": node_p50, "cpu": cpu})
            sys.stderr.write(f"[latency] rep {rep + 1}: bridge {total:.0f} µs, node {node_p50:.0f} µs\n")
    finally:
        _stop(responder)
    resp_spans: list[float] = (
        json.loads(resp_trace.read_text()).get("nats->nats", []) if resp_trace.exists() else []
    )
    total = _p50([r["bridge_p50"] for r in rows])
    node_p50 = _p50([r["node_p50"] for r in rows])
    parts = {
        "bridge: stdin line in -> request written to NATS": _p50(bridge_spans.get("stdin->nats", [])),
        "responder: request in -> reply written (fs_read_text_file)": _p50(resp_spans),
        "bridge: reply in from NATS -> response written to stdout": _p50(
            bridge_spans.get("nats->stdout", [])
        ),
    }
    inside = sum(parts.values())
    lines = [
        f"## Sequential fs_read_text_file (1 KB), {reps} x {count} calls, medians of p50s (µs)",
        "",
        "| part | p50 µs |",
        "|---|---|",
        f"| the call as the client measures it (bridge -> NATS -> fs responder, audit on) | {total:.0f} |",
        *(f"| {k} | {v:.0f} |" for k, v in parts.items()),
        f"| the rest: nats-server's two hops, kernel, process wake-ups, client | {total - inside:.0f} |",
        f"| reference filesystem server (node, direct stdio), for scale | {node_p50:.0f} |",
        "",
        "CPU µs per sequential call (median of repetitions): "
        + ", ".join(f"{p} {_p50([r['cpu'].get(p, 0.0) for r in rows]):.0f}" for p in rows[0]["cpu"])
        if rows
        else "",
    ]
    doc = {
        "bench": "mcp-nats-latency",
        "bridge_p50_us": total,
        "node_p50_us": node_p50,
        "parts_us": parts,
        "rest_us": total - inside,
        "reps": rows,
    }
    sys.stdout.write("\n".join(lines) + "\n\n" + json.dumps(doc, separators=(",", ":")) + "\n")
    return 0

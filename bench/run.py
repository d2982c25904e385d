"""The benchmark run: every target, every phase, repetitions interleaved (performance.md section 2).

For each repetition: cold starts of each stdio target, then its steady phases (tools/list,
sequential calls, pipelined calls at K = 1, 16, 64, each after a warm-up at the same K), then
one echo responder driven directly over NATS, then the same with 1 to 4 echo responders.
Interleaving (rep 1 of everything, then rep 2...) spreads machine drift over all targets.
Progress goes to stderr; the caller turns the collected rows into the report.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import uvloop

from .nats_load import drive
from .procs import Meter, peak_rss_mb
from .rig import Rig, Target
from .stdio_load import Phase, StdioServer, Workload, cold_start


@dataclass(frozen=True)
class Plan:
    """Counts and durations of each phase."""

    reps: int = 3
    cold_spawns: int = 5
    list_warm: int = 100
    list_count: int = 500
    seq_warm: int = 1000
    seq_count: int = 2000
    pipe_warm: int = 1000
    pipe_count: int = 20000
    pipe_seconds: float = 10.0
    ks: tuple[int, ...] = (1, 16, 64)
    nats_ks: tuple[int, ...] = (64,)
    nats_count: int = 200_000
    nats_seconds: float = 5.0
    nats_warm: int = 2000
    scale_max: int = 4
    scale_k: int = 256

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            reps=1,
            cold_spawns=3,
            list_warm=50,
            list_count=200,
            seq_warm=300,
            seq_count=1000,
            pipe_warm=300,
            pipe_count=5000,
            pipe_seconds=4.0,
            nats_seconds=3.0,
            nats_warm=1000,
        )


@dataclass
class Row:
    """One timed phase of one repetition."""

    target: str
    mode: str
    rep: int
    ok: int
    failures: dict[str, int]
    ops: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    cpu_us: dict[str, float]
    """CPU µs per successful call, per process (and `loadgen`)."""
    noise: dict[str, float | None]
    bytes_per_call: float = 0.0
    syscalls: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per process: (read-like, write-like) syscalls per successful call."""

    @classmethod
    def of(cls, target: str, mode: str, rep: int, phase: Phase, meter: Meter) -> Row:
        n = max(1, phase.ok)
        lat = phase.latencies
        return cls(
            target,
            mode,
            rep,
            phase.ok,
            dict(phase.failures),
            phase.ops,
            phase.pct(0.5),
            phase.pct(0.9),
            phase.pct(0.99),
            max(lat) / 1000 if lat else float("nan"),
            statistics.fmean(lat) / 1000 if lat else float("nan"),
            {p: round(c / n * 1e6, 1) for p, c in meter.cpu.items()},
            meter.noise(),
            phase.bytes_in / n,
            {p: (round(r / n, 2), round(w / n, 2)) for p, (r, w) in meter.syscalls.items()},
        )


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    cold: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    """target -> process -> peak RSS (MB), the maximum over repetitions."""
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def peak(self, target: str, proc: str, mb: float) -> None:
        d = self.rss.setdefault(target, {})
        d[proc] = max(d.get(proc, 0.0), mb)


def _say(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def _timed(
    s: StdioServer,
    target: Target,
    work: Workload,
    mode: str,
    k: int,
    warm: int,
    count: int,
    seconds: float,
    rep: int,
    res: Results,
) -> None:
    s.run(work, k=k, count=warm, mode=mode)
    meter = Meter({"server" if not target.helpers else target.name: s.pid, **target.helpers}).start()
    phase = s.run(work, k=k, count=count, max_seconds=seconds, mode=mode)
    meter.stop()
    row = Row.of(target.name, mode, rep, phase, meter)
    res.rows.append(row)
    bad = f" FAILURES {row.failures}" if row.failures else ""
    _say(f"  {target.name:8} {mode:6} {row.ops:9.0f}/s p50 {row.p50:8.0f} µs p99 {row.p99:8.0f} µs{bad}")


def steady(target: Target, rig: Rig, plan: Plan, rep: int, res: Results) -> None:
    log = rig.logs / f"{target.name}-steady.err"
    with StdioServer(target.argv, env=target.env, cwd=target.cwd, stderr=log) as s:
        s.handshake(target.tool)
        res.servers[target.name] = {
            "serverInfo": s.server_info,
            "protocolVersion": s.protocol,
            "tools": len(s.tools),
        }
        listing = Workload("tools/list")
        _timed(s, target, listing, "list", 0, plan.list_warm, plan.list_count, 1e9, rep, res)
        work = rig.read_workload(target)
        _timed(s, target, work, "seq", 0, plan.seq_warm, plan.seq_count, 1e9, rep, res)
        for k in plan.ks:
            _timed(s, target, work, f"K={k}", k, plan.pipe_warm, plan.pipe_count, plan.pipe_seconds, rep, res)
        res.peak(target.name, target.name if target.helpers else "server", peak_rss_mb(s.pid))
        s.close()


def cold(target: Target, rig: Rig, spawns: int, res: Results) -> None:
    out = res.cold.setdefault(target.name, [])
    for _ in range(spawns):
        c = cold_start(
            target.argv,
            env=target.env,
            cwd=target.cwd,
            stderr=rig.logs / f"{target.name}-cold.err",
            need_tool=target.tool,
        )
        out.append((c.initialize, c.tools_list, c.exit))
    last = out[-spawns:]
    _say(
        f"  {target.name:8} cold   initialize {statistics.median(x[0] for x in last) * 1000:.0f} ms, "
        f"tools/list {statistics.median(x[1] for x in last) * 1000:.0f} ms, exit {statistics.median(x[2] for x in last) * 1000:.0f} ms"
    )


def nats_direct(
    rig: Rig, plan: Plan, rep: int, res: Results, instances: int, k: int, mode: str, *, plain: bool = False
) -> None:
    if plain:
        assert rig.echo_plain is not None
        pids, root = {"echo-1": rig.echo_plain.pid}, rig.plain_root
    else:
        pids, root = {f"echo-{i + 1}": p.pid for i, p in enumerate(rig.echo[:instances])}, rig.root
    meter = Meter({**pids, "nats-server": rig.nats_pid}).start()
    phase = uvloop.run(
        drive(
            rig.url,
            root,
            svc="bench",
            tool="echo",
            k=k,
            count=plan.nats_count,
            max_seconds=plan.nats_seconds,
            warmup=plan.nats_warm,
        )
    )
    meter.stop()
    row = Row.of("nats-echo", mode, rep, phase, meter)
    res.rows.append(row)
    bad = f" FAILURES {row.failures}" if row.failures else ""
    _say(
        f"  echo x{instances} K={k:<4}{' audit off' if plain else ''} {row.ops:9.0f}/s p50 {row.p50:8.0f} µs p99 {row.p99:8.0f} µs{bad}"
    )


def run(
    rig: Rig, plan: Plan, targets: list[Target], cold_only: list[Target], *, nats: bool, scaling: bool
) -> Results:
    res = Results(notes=rig.notes)
    for rep in range(plan.reps):
        _say(f"repetition {rep + 1} of {plan.reps}")
        for t in targets:
            cold(t, rig, plan.cold_spawns, res)
            steady(t, rig, plan, rep, res)
        for t in cold_only:
            cold(t, rig, max(1, plan.cold_spawns - 2), res)
        if nats:
            for k in plan.nats_ks:
                nats_direct(rig, plan, rep, res, 1, k, f"1 resp K={k}")
                if rig.echo_plain is not None:
                    nats_direct(rig, plan, rep, res, 1, k, f"1 resp K={k} audit off", plain=True)
        if scaling:
            for n in range(1, plan.scale_max + 1):
                while len(rig.echo) < n:
                    rig.start_echo()
                nats_direct(rig, plan, rep, res, n, plan.scale_k, f"{n} resp K={plan.scale_k}")
            rig.stop_echo_beyond(1)
    for t in targets:
        for proc, pid in t.helpers.items():
            res.peak(t.name, proc, peak_rss_mb(pid))
    for i, p in enumerate(rig.echo):
        res.peak("nats-echo", f"echo-{i + 1}", peak_rss_mb(p.pid))
    return res

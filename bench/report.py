"""The report: medians over repetitions as Markdown tables, ratios against each baseline, the
design targets met or missed, and one JSON line with everything (for scripts and CI logs)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict
from typing import Any

from .run import Plan, Results, Row

MODES = ("list", "seq", "K=1", "K=16", "K=64")
BASELINES = (("node-fs", "reference fs (node)"), ("sdk", "Python SDK"))
NOISY_PCT = 20.0
"""A phase where more than this share of the machine was busy with work we did not measure is marked †."""


def _med(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def aggregate(rows: list[Row]) -> dict[tuple[str, str], dict[str, Any]]:
    """(target, mode) -> medians over repetitions (ops with min and max), failures summed."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.target, r.mode)].append(r)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, rs in groups.items():
        procs = sorted({p for r in rs for p in r.cpu_us})
        fails: dict[str, int] = defaultdict(int)
        for r in rs:
            for reason, n in r.failures.items():
                fails[reason] += n
        out[key] = {
            "reps": len(rs),
            "ok": sum(r.ok for r in rs),
            "failures": dict(fails),
            "ops": _med([r.ops for r in rs]),
            "ops_min": min(r.ops for r in rs),
            "ops_max": max(r.ops for r in rs),
            "p50": _med([r.p50 for r in rs]),
            "p90": _med([r.p90 for r in rs]),
            "p99": _med([r.p99 for r in rs]),
            "max": _med([r.max for r in rs]),
            "cpu_us": {p: round(_med([r.cpu_us.get(p, float("nan")) for r in rs]), 1) for p in procs},
            "busy_pct": _med([float(r.noise.get("busy_pct") or 0) for r in rs]),
            "other_pct": _med([float(r.noise.get("other_pct") or 0) for r in rs]),
            "steal_pct": _med([float(r.noise.get("steal_pct") or 0) for r in rs]),
            "bytes_per_call": _med([r.bytes_per_call for r in rs]),
            "syscalls_per_call": {
                p: [round(_med([r.syscalls[p][i] for r in rs if p in r.syscalls]), 2) for i in (0, 1)]
                for p in sorted({p for r in rs for p in r.syscalls})
            },
        }
    return out


def _f(x: float, digits: int = 0) -> str:
    if math.isnan(x):
        return "–"
    return f"{x:,.{digits}f}"


def _server_cpu(a: dict[str, Any]) -> float:
    return float(sum(v for p, v in a["cpu_us"].items() if p != "loadgen"))


def _cpu_split(a: dict[str, Any]) -> str:
    parts = [f"{p} {_f(v)}" for p, v in a["cpu_us"].items() if p not in ("loadgen", "server")]
    return " + ".join(parts) if parts else ""


def steady_table(agg: dict[tuple[str, str], dict[str, Any]], labels: dict[str, str]) -> str:
    lines = [
        "| server | mode | p50 µs | p99 µs | calls/s (min–max) | server CPU µs/call | of which | loadgen µs/call | machine busy / not ours / steal % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for target in labels:
        for mode in MODES:
            a = agg.get((target, mode))
            if a is None:
                continue
            fails = f" **{sum(a['failures'].values())} failed**" if a["failures"] else ""
            noisy = " †" if a["other_pct"] > NOISY_PCT else ""
            lines.append(
                f"| {labels[target]} | {mode}{noisy} | {_f(a['p50'])} | {_f(a['p99'])} | {_f(a['ops'])} ({_f(a['ops_min'])}–{_f(a['ops_max'])}){fails} "
                f"| {_f(_server_cpu(a))} | {_cpu_split(a)} | {_f(a['cpu_us'].get('loadgen', float('nan')))} "
                f"| {_f(a['busy_pct'])} / {_f(a['other_pct'])} / {_f(a['steal_pct'])} |"
            )
    return "\n".join(lines)


def ratio_table(agg: dict[tuple[str, str], dict[str, Any]], labels: dict[str, str]) -> str:
    lines = [
        "| mode | bridge row | vs | calls/s ratio | p50 ratio | p99 ratio | CPU/call ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in MODES[1:]:
        for bridge in ("bridge", "bridge-noaudit"):
            b = agg.get((bridge, mode))
            if b is None:
                continue
            for base, label in BASELINES:
                o = agg.get((base, mode))
                if o is None:
                    continue
                lines.append(
                    f"| {mode} | {'audit off' if bridge.endswith('noaudit') else 'default'} | {label} | {b['ops'] / o['ops']:.2f}x "
                    f"| {b['p50'] / o['p50']:.2f}x | {b['p99'] / o['p99']:.2f}x | {_server_cpu(b) / _server_cpu(o):.2f}x |"
                )
    return "\n".join(lines)


def cold_table(res: Results, labels: dict[str, str]) -> str:
    lines = [
        "| server | spawns | to `initialize` ms | to first `tools/list` ms | exit after stdin close ms (max) |",
        "|---|---|---|---|---|",
    ]
    for target, xs in res.cold.items():
        if not xs:
            continue
        lines.append(
            f"| {labels.get(target, target)} | {len(xs)} | {_f(_med([x[0] * 1000 for x in xs]))} | {_f(_med([x[1] * 1000 for x in xs]))} "
            f"| {_f(_med([x[2] * 1000 for x in xs]))} ({_f(max(x[2] for x in xs) * 1000)}) |"
        )
    return "\n".join(lines)


def nats_table(agg: dict[tuple[str, str], dict[str, Any]]) -> str:
    lines = [
        "| responders | in flight | calls/s (min–max) | p50 µs | p99 µs | responder CPU µs/call (sum) | nats-server µs/call | driver µs/call |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [(mode, a) for (target, mode), a in agg.items() if target == "nats-echo"]
    for mode, a in sorted(rows, key=lambda r: (int(r[0].split()[0]), int(r[0].split()[2][2:]), r[0])):
        n, _, k, *rest = mode.split(" ")
        n += " (audit off)" if rest else ""
        resp = sum(v for p, v in a["cpu_us"].items() if p.startswith("echo-"))
        fails = f" **{sum(a['failures'].values())} failed**" if a["failures"] else ""
        lines.append(
            f"| {n} | {k[2:]} | {_f(a['ops'])} ({_f(a['ops_min'])}–{_f(a['ops_max'])}){fails} | {_f(a['p50'])} | {_f(a['p99'])} "
            f"| {_f(resp)} | {_f(a['cpu_us'].get('nats-server', float('nan')))} | {_f(a['cpu_us'].get('loadgen', float('nan')))} |"
        )
    return "\n".join(lines)


def rss_table(res: Results, labels: dict[str, str]) -> str:
    lines = ["| run | process | peak RSS MB |", "|---|---|---|"]
    for target, procs in res.rss.items():
        for proc, mb in procs.items():
            lines.append(f"| {labels.get(target, target)} | {proc} | {mb:.1f} |")
    return "\n".join(lines)


def targets(agg: dict[tuple[str, str], dict[str, Any]], res: Results) -> list[dict[str, Any]]:
    """Each design target of issue #6: the measured value, the bar, met or not (None: not measured)."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, bar: float | None, met: bool | None, unit: str) -> None:
        out.append({"target": name, "value": value, "bar": bar, "met": met, "unit": unit})

    def get(t: str, m: str, key: str) -> float | None:
        a = agg.get((t, m))
        return None if a is None else float(a[key])

    n64, s64, np_ = get("node-fs", "K=64", "ops"), get("sdk", "K=64", "ops"), get("node-fs", "seq", "p50")
    for bridge, note in (("bridge", ""), ("bridge-noaudit", ", audit off")):
        if (bridge, "seq") not in agg:
            continue
        b64, bp = get(bridge, "K=64", "ops"), get(bridge, "seq", "p50")
        add(
            f"fs_read_text_file K=64 calls/s >= reference fs server{note}",
            b64,
            n64,
            None if b64 is None or n64 is None else b64 >= n64,
            "calls/s",
        )
        add(
            f"fs_read_text_file K=64 calls/s >= 5x Python SDK server{note}",
            b64,
            None if s64 is None else 5 * s64,
            None if b64 is None or s64 is None else b64 >= 5 * s64,
            "calls/s",
        )
        add(
            f"sequential p50 <= 1.5x reference fs server's{note}",
            bp,
            None if np_ is None else 1.5 * np_,
            None if bp is None or np_ is None else bp <= 1.5 * np_,
            "µs",
        )
        for mode in ("seq", "K=64"):
            p99 = get(bridge, mode, "p99")
            add(
                f"p99 < 10 ms through the bridge ({mode}{note})",
                p99,
                10_000,
                None if p99 is None else p99 < 10_000,
                "µs",
            )
    for off, note in ((False, ""), (True, ", audit off")):
        best = max(
            (
                a["ops"]
                for (t, m), a in agg.items()
                if t == "nats-echo" and m.startswith("1 resp") and ("audit off" in m) == off
            ),
            default=None,
        )
        if best is not None or not off:
            add(
                f"one responder > 10,000 calls/s (echo over NATS{note})",
                best,
                10_000,
                None if best is None else best > 10_000,
                "calls/s",
            )
    bc, nc = res.cold.get("bridge"), res.cold.get("node-fs")
    bi = _med([x[0] * 1000 for x in bc]) if bc else None
    ni = _med([x[0] * 1000 for x in nc]) if nc else None
    add(
        "bridge cold start to initialize < reference fs server's",
        bi,
        ni,
        None if bi is None or ni is None else bi < ni,
        "ms",
    )
    be = _med([x[2] * 1000 for x in bc]) if bc else None
    add("bridge exit within 100 ms of stdin close (median)", be, 100, None if be is None else be <= 100, "ms")
    bm = max(x[2] * 1000 for x in bc) if bc else None
    add(
        "bridge exit within 100 ms of stdin close (every spawn)",
        bm,
        100,
        None if bm is None else bm <= 100,
        "ms",
    )
    return out


def targets_table(ts: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | bar | |", "|---|---|---|---|"]
    for t in ts:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        value = "–" if t["value"] is None else f"{_f(t['value'])} {t['unit']}"
        bar = "–" if t["bar"] is None else f"{_f(t['bar'])} {t['unit']}"
        lines.append(f"| {t['target']} | {value} | {bar} | {verdict} |")
    return "\n".join(lines)


def render(
    res: Results, plan: Plan, labels: dict[str, str], meta: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    agg = aggregate(res.rows)
    ts = targets(agg, res)
    parts = [
        f"## mcp-nats benchmark ({plan.reps} repetition(s), medians; {meta.get('machine', '')})",
        "",
        "### Steady state: read_text_file of a 1 KB file (1,024 distinct files), and tools/list",
        "",
        steady_table(agg, labels),
        "",
        "### Bridge ratios (bridge / baseline; calls/s > 1 is better, latency and CPU < 1 are better)",
        "",
        ratio_table(agg, labels),
        "",
        "### Cold start",
        "",
        cold_table(res, labels),
        "",
        "### One responder process driven directly over NATS (trivial `echo` tool), and scaling",
        "",
        nats_table(agg),
        "",
        "### Peak RSS",
        "",
        rss_table(res, labels),
        "",
        "### Design targets (issue #6)",
        "",
        targets_table(ts),
    ]
    noisy = any(a["other_pct"] > NOISY_PCT for (t, _), a in agg.items() if t != "nats-echo")
    parts += (
        []
        if not noisy
        else [
            "",
            f"† more than {NOISY_PCT:.0f} % of the machine's CPU went to work none of the measured processes did "
            "(other tenants, unattributed kernel work): treat that row's latency and calls/s as contended; CPU µs/call is the "
            "figure that survives contention best (performance.md section 5).",
        ]
    )
    if res.notes:
        parts += ["", "Notes:", *[f"- {n}" for n in res.notes]]
    doc = {
        "bench": "mcp-nats",
        **meta,
        "plan": asdict(plan),
        "phases": [{"target": t, "mode": m, **a} for (t, m), a in sorted(agg.items())],
        "cold_ms": {
            t: {
                "initialize": _med([x[0] * 1000 for x in xs]),
                "tools_list": _med([x[1] * 1000 for x in xs]),
                "exit": _med([x[2] * 1000 for x in xs]),
                "exit_max": max(x[2] * 1000 for x in xs),
                "spawns": len(xs),
            }
            for t, xs in res.cold.items()
            if xs
        },
        "peak_rss_mb": res.rss,
        "servers": res.servers,
        "targets": ts,
        "notes": res.notes,
    }
    return "\n".join(parts), doc

"""`python -m bench profile`: where the bridge and the responders spend their CPU under load.

Runs py-spy (`record -f raw --gil --nonblocking`: only samples of the thread holding the GIL,
so the shares are shares of Python-side time, syscalls made with the GIL held included)
against the bridge and the fs responder while the load generator keeps 64
`fs_read_text_file` calls in flight, then, when `perf` is installed, a second window with
`perf record -e cpu-clock` on the bridge, the responder and nats-server (true CPU time,
interpreter versus kernel), then py-spy on one echo responder driven directly over NATS at
256 in flight. Prints, per process, the top leaf lines (self time), the top functions
(inclusive) and a split by layer. The raw files are kept under the cache directory.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Final

import uvloop

from .nats_load import drive
from .procs import Meter
from .rig import BIN, Rig
from .stdio_load import StdioServer

_LAYERS: Final = (
    # uvloop does the write(2) with the GIL held, so syscall time lands on the Python line that asked
    ("socket write syscalls (nats-py flusher)", ("StreamWriter.writelines",)),
    ("stdout pipe write syscalls (bridge LineWriter.write)", ("LineWriter.write",)),
    ("nats-py client", ("nats/",)),
    ("bridge/", ("bridge/",)),
    ("bus/", ("bus/",)),
    ("fs tool", ("responders/fs/",)),
    ("responder runtime", ("responders/",)),
    ("schemas/", ("schemas/",)),
    ("worker threads (to_thread)", ("concurrent/futures", "threading.py", "asyncio/threads.py")),
    ("asyncio (tasks, futures, locks, timeouts)", ("asyncio/",)),
    ("path and file stdlib", ("posixpath", "pathlib.py", "<frozen os>", "contextlib.py")),
)
_LINE: Final = re.compile(r":\d+\)$")
# Frames every sample of a thread passes through; they say nothing about cost.
_ENTRY: Final = (
    "runpy",
    "cli/main.py",
    "cli/serve.py",
    "uvloop/__init__",
    "asyncio/runners.py",
    "<module>",
    "threading.py",
    "bench/echo_service.py",
)


def _load(path: Path) -> list[tuple[list[str], int]]:
    out: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            out.append((stack.split(";"), int(n)))
    return out


def _layer(frame: str) -> str:
    for name, needles in _LAYERS:
        if any(n in frame for n in needles):
            return name
    return "other (entry points, uvloop run)"


def analyse(path: Path, top: int = 20) -> str:
    stacks = _load(path)
    total = sum(n for _, n in stacks)
    if not total:
        return f"{path.name}: no samples (is py-spy allowed to ptrace?)"
    leaf: Counter[str] = Counter()
    func: Counter[str] = Counter()
    layer: Counter[str] = Counter()
    for frames, n in stacks:
        leaf[frames[-1]] += n
        layer[_layer(frames[-1])] += n
        for f in {_LINE.sub(")", x) for x in frames}:
            func[f] += n
    out = [f"{path.stem}: {total} samples with the GIL held", "", "  self time by line (leaf frame):"]
    out += [f"    {100 * n / total:5.1f}%  {f}" for f, n in leaf.most_common(top)]
    out += ["", "  inclusive time by function:"]
    out += [
        f"    {100 * n / total:5.1f}%  {f}"
        for f, n in func.most_common(top + 25)
        if not any(e in f for e in _ENTRY)
    ][: top + 10]
    out += ["", "  self time by layer:"]
    out += [f"    {100 * n / total:5.1f}%  {name}" for name, n in layer.most_common()]
    # A write(2) that wakes another process often ends in a context switch while the GIL is held,
    # so wall-time samples overstate it (perf's CPU samples below say how much is really kernel).
    python = {k: v for k, v in layer.items() if "syscalls" not in k}
    rest = sum(python.values())
    if rest and rest < total:
        out += ["", "  self time by layer, write syscalls left out (the Python-side split):"]
        out += [
            f"    {100 * n / rest:5.1f}%  {name}" for name, n in sorted(python.items(), key=lambda kv: -kv[1])
        ]
    return "\n".join(out)


def perf_split(
    perf: str, pids: dict[str, int], seconds: float, out_dir: Path
) -> dict[str, subprocess.Popen[bytes]]:
    """Start `perf record` (CPU-clock samples, kernel included) on each process."""
    return {
        name: subprocess.Popen(
            [
                perf,
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "999",
                "-g",
                "-o",
                str(out_dir / f"{name}.perf"),
                "-p",
                str(pid),
                "--",
                "sleep",
                str(int(seconds)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }


def perf_report(perf: str, path: Path, top: int = 8) -> str:
    """Where the CPU time went by object (interpreter, kernel, libc, uvloop...) and the top kernel symbols."""

    def rows(*args: str) -> list[str]:
        r = subprocess.run(
            [perf, "report", "-i", str(path), "--no-children", "--stdio", "-g", "none", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = [x.strip() for x in r.stdout.splitlines() if x.strip() and not x.startswith("#")]
        return list(dict.fromkeys(lines))  # perf repeats the table per sample group on some files

    dso = rows("--sort", "dso")[:top]
    kernel = rows("--sort", "sym", "--dsos", "[kernel.kallsyms]")[:top]
    return "\n".join(
        [
            f"{path.stem}: CPU time by object (perf, cpu-clock)",
            *[f"    {x}" for x in dso],
            "  top kernel symbols (share of all CPU samples):",
            *[f"    {x}" for x in kernel],
        ]
    )


def _spy(py_spy: str, pid: int, out: Path, seconds: float, rate: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "-f",
            "raw",
            "--gil",
            "--nonblocking",
            "-r",
            str(rate),
            "-d",
            str(int(seconds)),
            "-p",
            str(pid),
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(spies: list[subprocess.Popen[bytes]], seconds: float) -> None:
    for sp in spies:
        try:
            _, err = sp.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            sp.kill()
            _, err = sp.communicate()
        if sp.returncode:
            sys.stderr.write(f"py-spy exited with {sp.returncode}: {err.decode(errors='replace')[-500:]}\n")


def profile(rig: Rig, *, seconds: float, rate: int) -> int:
    py_spy = str(BIN / "py-spy") if (BIN / "py-spy").exists() else shutil.which("py-spy")
    if py_spy is None:
        sys.stderr.write("py-spy is not installed; install it with: .venv/bin/pip install py-spy\n")
        return 2
    out_dir = rig.cache / "profiles" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = rig.bridge()
    work = rig.read_workload(target)
    reports: list[str] = []
    with StdioServer(target.argv, env=target.env, stderr=rig.logs / "bridge-profile.err") as s:
        s.handshake(target.tool)
        s.run(work, k=64, count=3000)
        files = {"bridge": out_dir / "bridge.raw", "fs-responder": out_dir / "fs-responder.raw"}
        pids = {"bridge": s.pid, "fs-responder": rig.fs[0].pid}
        spies = [_spy(py_spy, pids[name], files[name], seconds, rate) for name in files]
        meter = Meter({**pids, "nats-server": rig.nats_pid}).start()
        phase = s.run(work, k=64, count=10**9, max_seconds=seconds + 2)
        meter.stop()
        _finish(spies, seconds)
    n = max(1, phase.ok)
    cpu = ", ".join(f"{p} {c / n * 1e6:.0f}" for p, c in meter.cpu.items())
    sys_ = ", ".join(f"{p} {r / n:.2f}/{w / n:.2f}" for p, (r, w) in meter.syscalls.items())
    reports.append(
        f"bridge K=64 fs_read_text_file under py-spy: {phase.ops:,.0f} calls/s, "
        f"{sum(phase.failures.values())} failed; CPU µs/call: {cpu}; read/write syscalls per call: {sys_}"
    )
    reports += [analyse(f) for f in files.values()]
    perf = shutil.which("perf")
    if perf is not None:  # a second window, so the two samplers do not disturb each other
        with StdioServer(target.argv, env=target.env, stderr=rig.logs / "bridge-perf.err") as s:
            s.handshake(target.tool)
            s.run(work, k=64, count=3000)
            recs = perf_split(
                perf,
                {"bridge": s.pid, "fs-responder": rig.fs[0].pid, "nats-server": rig.nats_pid},
                seconds,
                out_dir,
            )
            s.run(work, k=64, count=10**9, max_seconds=seconds + 2)
            for rec in recs.values():
                rec.wait(seconds + 30)
        reports += [perf_report(perf, out_dir / f"{name}.perf") for name in recs]

    echo_file = out_dir / "echo-responder.raw"
    spy = _spy(py_spy, rig.echo[0].pid, echo_file, seconds, rate)
    meter = Meter({"echo-responder": rig.echo[0].pid, "nats-server": rig.nats_pid}).start()
    p2 = uvloop.run(
        drive(
            rig.url,
            rig.root,
            svc="bench",
            tool="echo",
            k=256,
            count=10**9,
            max_seconds=seconds + 2,
            warmup=2000,
        )
    )
    meter.stop()
    _finish([spy], seconds)
    n = max(1, p2.ok)
    cpu = ", ".join(f"{p} {c / n * 1e6:.0f}" for p, c in meter.cpu.items())
    sys_ = ", ".join(f"{p} {r / n:.2f}/{w / n:.2f}" for p, (r, w) in meter.syscalls.items())
    reports.append(
        f"echo responder over NATS K=256 under py-spy: {p2.ops:,.0f} calls/s; CPU µs/call: {cpu}; "
        f"read/write syscalls per call: {sys_}"
    )
    reports.append(analyse(echo_file))
    reports.append(f"raw profiles: {out_dir} (flame graph: flamegraph.pl < FILE > out.svg)")
    sys.stdout.write("\n\n".join(reports) + "\n")
    return 0

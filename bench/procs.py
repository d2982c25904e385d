"""Per-process accounting from /proc: CPU (utime + stime of every thread), peak and current RSS,
and the machine-wide noise block (busy %, CPU pressure) that says how far to trust a phase.

CPU comes from /proc/<pid>/stat in clock ticks (10 ms on this kernel), so a phase shorter
than about a second is coarse; the phases of this benchmark last several seconds.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

TICK_S: Final = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S  # fields 14 and 15 of proc(5)


def pids_matching(needle: bytes) -> list[int]:
    """Every process whose command line contains `needle` (e.g. PostgreSQL backends of one database,
    whose title is "postgres: user db 127.0.0.1(port) idle")."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def io_syscalls(pid: int) -> tuple[int, int]:
    """(read-like, write-like) syscalls made by `pid` so far, from /proc/<pid>/io (0, 0 if unreadable)."""
    r = w = 0
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            for line in f:
                if line.startswith(b"syscr:"):
                    r = int(line.split()[1])
                elif line.startswith(b"syscw:"):
                    w = int(line.split()[1])
    except OSError:
        pass
    return r, w


def status_kb(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current), 0 if unknown."""
    prefix = key.encode() + b":"
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(prefix):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    return status_kb(pid, "VmHWM") / 1024


def self_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _machine() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies over all CPUs from /proc/stat; busy excludes steal."""
    with open("/proc/stat", "rb") as f:
        parts = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    idle = parts[3] + parts[4]
    steal = parts[7]
    total = sum(parts[:8])
    return total - idle - steal, steal, total


def _psi_some_us() -> int | None:
    try:
        with open("/proc/pressure/cpu", "rb") as f:
            for line in f:
                if line.startswith(b"some"):
                    return int(line.rsplit(b"total=", 1)[1])
    except OSError:
        return None
    return None


@dataclass
class Meter:
    """CPU of named processes (and of this process) between `start()` and `stop()`, plus noise."""

    pids: dict[str, int]
    groups: dict[str, Callable[[], Iterable[int]]] = field(default_factory=dict)
    """Named sets of processes that come and go (a server's per-connection backends): CPU summed over the
    members seen at stop, from what each had at start (0 for one that started since; one that ended is lost)."""
    cpu: dict[str, float] = field(default_factory=dict)
    syscalls: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per process: (read-like, write-like) syscalls during the phase (/proc/<pid>/io syscr, syscw)."""
    elapsed: float = 0.0
    busy_pct: float = 0.0
    other_pct: float = 0.0
    steal_pct: float = 0.0
    psi_some_pct: float | None = None
    _t0: float = 0.0
    _cpu0: dict[str, float] = field(default_factory=dict)
    _group0: dict[str, dict[int, float]] = field(default_factory=dict)
    _io0: dict[str, tuple[int, int]] = field(default_factory=dict)
    _m0: tuple[int, int, int] = (0, 0, 0)
    _psi0: int | None = None

    def start(self) -> Meter:
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._cpu0["loadgen"] = self_cpu_seconds()
        self._group0 = {
            name: {pid: cpu_seconds(pid) for pid in members()} for name, members in self.groups.items()
        }
        self._io0 = {name: io_syscalls(pid) for name, pid in self.pids.items()}
        self._m0 = _machine()
        self._psi0 = _psi_some_us()
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> Meter:
        self.elapsed = time.perf_counter() - self._t0
        self.cpu = {name: cpu_seconds(pid) - self._cpu0[name] for name, pid in self.pids.items()}
        self.cpu["loadgen"] = self_cpu_seconds() - self._cpu0["loadgen"]
        for name, members in self.groups.items():
            before = self._group0[name]
            self.cpu[name] = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in members())
        for name, pid in self.pids.items():
            r, w = io_syscalls(pid)
            self.syscalls[name] = (r - self._io0[name][0], w - self._io0[name][1])
        busy1, steal1, total1 = _machine()
        busy, steal, total = busy1 - self._m0[0], steal1 - self._m0[1], total1 - self._m0[2]
        if total > 0:
            self.busy_pct = 100.0 * busy / total
            self.steal_pct = 100.0 * steal / total
            ours = sum(self.cpu.values())
            # what nobody we measure used: other tenants, and kernel work (softirq) charged to no process
            self.other_pct = max(0.0, self.busy_pct - 100.0 * ours / (total * TICK_S))
        psi1 = _psi_some_us()
        if psi1 is not None and self._psi0 is not None and self.elapsed > 0:
            self.psi_some_pct = 100.0 * (psi1 - self._psi0) / 1e6 / self.elapsed
        return self

    def noise(self) -> dict[str, float | None]:
        return {
            "busy_pct": round(self.busy_pct, 1),
            "other_pct": round(self.other_pct, 1),
            "steal_pct": round(self.steal_pct, 1),
            "psi_some_pct": None if self.psi_some_pct is None else round(self.psi_some_pct, 1),
            "loadavg1": round(os.getloadavg()[0], 2),
        }
